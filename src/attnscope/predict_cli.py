"""``attnscope predict``: mask tokens of a text and print the model's top-k predictions (and the logit lens)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from attnscope.cli import add_input_arguments, add_model_options, load_from_args, preview
from attnscope.text import terminal_text

if TYPE_CHECKING:
    from attnscope.predict import Candidate, Prediction

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: SubParsers) -> None:
    """Add ``predict`` to the ``attnscope`` command line."""
    p = subparsers.add_parser(
        "predict",
        help="mask tokens and print what the model predicts (masked LM: at each mask; decoder: the next token)",
        description="Run a model with its language-model head on TEXT (and TEXT_B), with the tokens at the "
        "--mask indices replaced by the mask token (removed where the tokenizer has none), and print its top-k "
        "predictions: at each [MASK] for a masked LM, the next token for a decoder. Token indices count special "
        "tokens ([CLS] is 0 for BERT); run once without --mask to see them.",
    )
    add_input_arguments(p)
    p.add_argument("--mask", type=int, nargs="+", default=[], metavar="N", help="token indices to mask")
    p.add_argument("-k", type=int, default=5, metavar="K", help="how many top tokens to print (default 5)")
    p.add_argument(
        "--logit-lens", action="store_true", help="also read every layer through the final norm and output head"
    )
    p.add_argument("--json", action="store_true", help="print the predictions as JSON (Prediction.to_json())")
    add_model_options(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from attnscope.predict import predict

    handle = load_from_args(args, lm_head=True)
    result = predict(
        handle,
        args.text,
        args.text_b,
        mask=args.mask,
        k=args.k,
        logit_lens=args.logit_lens,
        target=args.target,
        truncation=args.truncate,
    )
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        _print(result, handle.name)
    return 0


def _print(result: Prediction, name: str) -> None:
    info = result.trace.model
    kind = {"masked": "masked LM", "next": "next-token prediction", None: "no LM head"}[result.kind]
    print(f"model:   {terminal_text(name)} ({info.architecture}, {kind})")
    print("tokens:  " + preview([f"{i}:{t}" for i, t in enumerate(result.original.tokens.display)], limit=40))
    for edit in result.edits:
        now = "removed" if edit.now is None else terminal_text(edit.now)
        print(f"masked:  {edit.index} {terminal_text(edit.token)} -> {now}")
    if result.kind is None:
        print(f"note:    {terminal_text(name)} was loaded without an LM head (its config names none): no predictions")
    elif not result.predictions:
        print("note:    no mask token in the input: mask a token with --mask N to see what the model predicts there")
    for p in result.predictions:
        print(f"at {p.position} ({terminal_text(p.token)}): {_ranked(p.top)}")
        for layer, top in enumerate(p.layers or ()):
            print(f"  logit lens, layer {layer}: {_ranked(top)}")


def _ranked(candidates: tuple[Candidate, ...]) -> str:
    return "  ".join(f"{terminal_text(c.token)} {c.prob:.3f}" for c in candidates)
