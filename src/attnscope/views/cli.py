"""``attnscope view``: trace a text (or pair) and write one self-contained HTML page of views."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from attnscope.cli import add_input_arguments, add_model_options, load_from_args, preview, text_argument
from attnscope.errors import InputError
from attnscope.files import check_target
from attnscope.views.measures import MEASURE_NAMES, check_measure, compute
from attnscope.views.registry import VIEW_KINDS, VIEWS


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``view`` subcommand."""
    p = subparsers.add_parser(
        "view",
        help="write an interactive page (head, model, neuron, heatmap, contribution views) for a text or pair",
        description="Run a model on TEXT (and TEXT_B as sentence B) and write one self-contained, offline "
        "HTML page with the views as tabs; with --compare or --compare-model, the comparison view of two "
        "traces instead. Layer and head numbers given here are 0-based.",
    )
    add_input_arguments(p)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("attnscope-view.html"),
        help="file to write: .html (interactive page), or .png / .svg (a static image of one view, e.g. --views head)",
    )
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument(
        "--views",
        default=None,
        help=f"comma-separated views, in tab order: {','.join(VIEW_KINDS)} (default: all of them)",
    )
    p.add_argument("--layers", default=None, help="layers to show, e.g. 0,1,2 (the head view starts at the first)")
    p.add_argument("--heads", default=None, help="heads to show, e.g. 0,3 (the neuron view and heatmap use the first)")
    p.add_argument("--theme", choices=("dark", "light"), default="dark", help="colour theme (default: dark)")
    p.add_argument(
        "--index-base", type=int, choices=(0, 1), default=0, help="label layers/heads from 0 (BertViz) or 1 (exBERT)"
    )
    p.add_argument(
        "--precision",
        choices=("uint8", "float32"),
        default="uint8",
        help="attention in the page: uint8 (default, error <= 1/255, small) or float32 (exact)",
    )
    p.add_argument(
        "--measure",
        default="attention",
        help=f"what the views show: {', '.join(MEASURE_NAMES)} (default: attention; a measure is computed for "
        "this text, and the page's selector switches back to raw attention)",
    )
    p.add_argument(
        "--compare",
        metavar="TEXT2",
        type=text_argument,
        default=None,
        help="write the comparison view instead: TEXT (A) beside TEXT2 (B, e.g. a minimal pair) and the difference "
        "B - A for aligned tokens",
    )
    p.add_argument(
        "--compare-model",
        metavar="NAME_OR_PATH",
        default=None,
        help="write the comparison view of the --model (A) and this model (B) on the same text (or on --compare's)",
    )
    add_model_options(p)
    p.set_defaults(func=_cmd_view)


def _indices(value: str | None, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--{what} takes comma-separated numbers such as 0,1,2; got {value!r}") from None
    if not out:
        raise InputError(f"--{what} is empty; leave it out to show all {what}")
    return out


def _cmd_view(args: argparse.Namespace) -> int:
    from attnscope.tracing import trace
    from attnscope.views.api import page

    if args.compare is not None or args.compare_model is not None:
        return _cmd_compare(args)

    views = tuple(v.strip() for v in args.views.split(",") if v.strip()) if args.views else tuple(VIEW_KINDS)
    bad = [v for v in views if v not in VIEW_KINDS]
    if bad or not views:
        raise InputError(f"unknown view(s) {', '.join(bad) or args.views!r}; choose from {','.join(VIEW_KINDS)}")
    layers = _indices(args.layers, "layers")
    heads = _indices(args.heads, "heads")
    suffix = args.output.suffix.lower()
    if suffix not in (".html", ".htm", ".png", ".svg"):
        raise InputError(f"-o {args.output}: write a .html page, or a .png / .svg image of one view")
    image = suffix in (".png", ".svg")
    if image and len(views) != 1:
        raise InputError(
            f"a {args.output.suffix} image shows one view; choose it with --views (e.g. --views head), "
            "or write an .html page for tabs"
        )
    spec = check_measure(args.measure)  # before the model loads
    check_target(args.output, "image" if image else "page")  # before the model loads
    handle = load_from_args(args)
    qk = any("qk" in VIEWS[v].needs for v in views)
    values = spec is not None and spec.values
    result = trace(handle, args.text, args.text_b, target=args.target, qk=qk, truncation=args.truncate, values=values)
    if spec is not None:
        compute(result, spec.name, result.main_stack, handle)
    view = page(
        result,
        views,
        layer=layers[0] if layers else None,
        heads=heads,
        include_layers=layers,
        include_heads=heads,
        theme=args.theme,
        index_base=args.index_base,
        precision=args.precision,
        measure=args.measure,
    )
    path = view.save(args.output).resolve()
    info = result.model
    print(f"model:   {info.name} ({info.architecture}, {info.num_layers} layers x {info.num_heads} heads)")
    print(f"tokens:  {len(result.tokens)}  {preview(result.tokens.display)}")
    print(f"views:   {', '.join(views)}" + (f" (showing {args.measure})" if spec is not None else ""))
    _written(path, image, args.open)
    return 0


def _written(path: Path, image: bool, open_it: bool) -> None:
    what = "image" if image else "page"
    print(f"{what} written to {path} ({path.stat().st_size / 1024:.0f} kB; open it in any browser, offline)")
    if open_it:
        webbrowser.open(path.as_uri())


def _cmd_compare(args: argparse.Namespace) -> int:
    """``view --compare TEXT2`` / ``--compare-model M``: the comparison view of A (TEXT on --model) and B."""
    from attnscope.tracing import trace
    from attnscope.views.compare import compare_view

    if args.views is not None or args.measure != "attention":
        raise InputError("--compare and --compare-model write the comparison view: leave out --views and --measure")
    layers = _indices(args.layers, "layers")
    heads = _indices(args.heads, "heads")
    suffix = args.output.suffix.lower()
    if suffix not in (".html", ".htm", ".png", ".svg"):
        raise InputError(f"-o {args.output}: write a .html page, or a .png / .svg image of the comparison")
    image = suffix in (".png", ".svg")
    check_target(args.output, "image" if image else "page")  # before the models load
    handle_a = load_from_args(args)
    handle_b = handle_a
    if args.compare_model is not None:  # loaded as --model is, with the same device, dtype and trust setting
        handle_b = load_from_args(argparse.Namespace(**{**vars(args), "model": args.compare_model}))
    text_b = args.compare if args.compare is not None else args.text
    a = trace(handle_a, args.text, args.text_b, target=args.target, truncation=args.truncate)
    b = trace(handle_b, text_b, args.text_b, target=args.target, truncation=args.truncate)
    view = compare_view(
        a,
        b,
        layer=layers[0] if layers else None,
        heads=heads,
        theme=args.theme,
        index_base=args.index_base,
        precision=args.precision,
    )
    path = view.save(args.output).resolve()
    for label, result in (("A", a), ("B", b)):
        info = result.model
        print(f"{label}: {info.name} ({info.num_layers} layers x {info.num_heads} heads), {len(result.tokens)} tokens")
        print(f"   {preview(result.tokens.display)}")
    kinds = view.subject.query.kinds
    print(
        f"aligned: {kinds.count('equal') + kinds.count('replace')} tokens ({kinds.count('replace')} replaced), "
        f"{kinds.count('delete')} only in A, {kinds.count('insert')} only in B"
    )
    note = view.subject.note()
    if note:
        print(f"note:    {note}")
    _written(path, image, args.open)
    return 0
