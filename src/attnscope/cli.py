"""The ``attnscope`` command line: one subcommand per job, errors as one readable line."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from attnscope.errors import AttnscopeError
from attnscope.text import terminal_text

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle

DEBUG_ENV = "ATTNSCOPE_DEBUG"  # set to 1 to print the traceback of any error
# Modules that each add their subcommands through a ``register(subparsers)`` function.
COMMAND_MODULES: tuple[str, ...] = (
    "attnscope.views.cli",
    "attnscope.probe.cli",
    "attnscope.heads.cli",
    "attnscope.predict_cli",
    "attnscope.index.cli",
    "attnscope.app.cli",
)


def text_argument(value: str) -> str:
    """An argparse type for text: bytes that are not valid in the terminal's encoding are a clear error."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start : err.end].encode("utf-8", "surrogateescape")
        raise argparse.ArgumentTypeError(
            f"the text holds bytes that are not valid {sys.getfilesystemencoding()} ({bad!r} at character "
            f"{err.start}); pass UTF-8 text"
        ) from None
    return value


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """TEXT, TEXT_B and --target: the input every model-running subcommand takes."""
    parser.add_argument(
        "text", metavar="TEXT", type=text_argument, help="the text (sentence A, or the source of an encoder-decoder)"
    )
    parser.add_argument(
        "text_b", metavar="TEXT_B", type=text_argument, nargs="?", default=None, help="optional sentence B"
    )
    parser.add_argument(
        "--target", type=text_argument, default=None, help="decoder text, for encoder-decoder models (e.g. T5, BART)"
    )
    parser.add_argument("--truncate", action="store_true", help="cut text longer than the model allows")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options every model-running subcommand shares."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        default=None,
        help="Hugging Face model name or local folder (default: the embedded all-MiniLM-L6-v2)",
    )
    group.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: CUDA if present)")
    group.add_argument("--dtype", default=None, help="float32 (default), float16 or bfloat16")
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run modelling code shipped with the model (off by default; only for authors you trust)",
    )


def load_from_args(args: argparse.Namespace, *, lm_head: bool = False) -> ModelHandle:
    """Load the model that the shared model options name (with its LM head if it has one and ``lm_head``)."""
    from attnscope.loading import load

    return load(
        args.model, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code, lm_head=lm_head
    )


def _register_trace(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "trace",
        help="run a model on a text (or pair) and save its attention to a trace file",
        description="Run a model on TEXT (and TEXT_B as sentence B) and save every layer's and head's "
        "attention, exactly as the model computed it, to a safetensors trace file.",
    )
    add_input_arguments(p)
    p.add_argument("--qk", action="store_true", help="also capture each head's query and key vectors")
    p.add_argument(
        "--values",
        action="store_true",
        help="also capture each head's value vectors and output projection (for attnscope.contrib's measures)",
    )
    p.add_argument("-o", "--output", type=Path, default=Path("trace.safetensors"), help="trace file to write")
    add_model_options(p)
    p.set_defaults(func=_cmd_trace)


def _cmd_trace(args: argparse.Namespace) -> int:
    from attnscope.files import check_target
    from attnscope.tracing import trace

    check_target(args.output, "trace file")  # before the model loads
    handle = load_from_args(args)
    result = trace(
        handle, args.text, args.text_b, target=args.target, qk=args.qk, values=args.values, truncation=args.truncate
    )
    path = result.save(args.output).resolve()
    info = result.model
    name = terminal_text(info.name)
    print(f"model:   {name} ({info.architecture}, {info.num_layers} layers x {info.num_heads} heads)")
    print(f"tokens:  {len(result.tokens)}  {preview(result.tokens.display)}")
    if result.target_tokens is not None:
        print(f"target:  {len(result.target_tokens)}  {preview(result.target_tokens.display)}")
    for stack, att in result.attention.items():
        shape = " x ".join(str(d) for d in att.shape)
        extra = "".join(
            f"  + {what}" for what, held in (("q/k", result.qk), ("values", result.values)) if stack in held
        )
        print(f"{stack + ':':8} {shape} (layers x heads x query x key){extra}")
    if result.truncated:
        print("note:    the input was truncated to the model's maximum length")
    print(f"trace written to {path}")
    return 0


def preview(tokens: Sequence[str], limit: int = 12) -> str:
    """The first tokens, space-separated, with a count of the rest (shown as plain text, escapes removed)."""
    shown = " ".join(terminal_text(t) for t in tokens[:limit])
    return shown + (f" ... (+{len(tokens) - limit})" if len(tokens) > limit else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnscope",
        description="See and measure what the attention heads of a Transformer do.",
    )
    from attnscope import __version__

    parser.add_argument("--version", action="version", version=f"attnscope {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help=f"print the full traceback of any error (or set {DEBUG_ENV}=1)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_trace(subparsers)
    for name in COMMAND_MODULES:
        register_fn: Callable[..., None] = import_module(name).register
        register_fn(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one subcommand; every failure ends in one line on stderr, never a raw traceback.

    A user error (bad input, model, file) exits 2; a system error (a file or disk the OS refused, an
    encoding, memory) exits 2 with the OS's reason; anything else is a bug in attnscope: one line asking for
    a report, exit 1. ``--debug`` or ``ATTNSCOPE_DEBUG=1`` also prints the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("attnscope: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            traceback.print_exc()
        message, code = describe_error(err)
        print(f"attnscope: {message}", file=sys.stderr)
        return code


def describe_error(err: BaseException) -> tuple[str, int]:
    """One line for an exception that ends a command, and the exit status (see :func:`main`)."""
    if isinstance(err, AttnscopeError):
        return f"error: {err}", 2
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        return f"error: {err.strerror or err}{where}", 2
    if isinstance(err, UnicodeError):
        return f"error: text that is not valid UTF-8 ({err}); pass UTF-8 text and files", 2
    if isinstance(err, MemoryError):
        return "error: out of memory; try a shorter input, a smaller --batch-size or fewer layers", 2
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (
        f"internal error: {type(err).__name__}{': ' + first if first else ''}. This is a bug in attnscope; please "
        f"report it with the command you ran (run it again with --debug or {DEBUG_ENV}=1 for the traceback)",
        1,
    )


if __name__ == "__main__":
    sys.exit(main())
