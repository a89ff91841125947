"""`graft models list`, `graft serve MODEL`, `graft chat MODEL`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from graftlm.cli.common import format_table
from graftlm.config.serve import ServeConfig
from graftlm.config.teacher import TeacherConfig
from graftlm.errors import ConfigError
from graftlm.teacher.base import SamplingOptions, Teacher

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SERVE_FLAGS = {"--max-body-bytes": "max_body_bytes", "--read-timeout": "read_timeout_s",
               "--max-connections": "max_connections", "--keep-alive": "keep_alive_s"}


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list the models graftlm knows and where they are")
    msub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    lst = msub.add_parser("list", help="the embedded default model and converted models in the cache")
    lst.set_defaults(func=_models_list)
    models.set_defaults(func=_models_list)

    serve = sub.add_parser("serve", help="serve a local model as an OpenAI-compatible API (batched generation)")
    serve.add_argument("model", help="`default`, a Hugging Face model folder (e.g. a trained checkpoint) or a .gguf file")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--api-key-env", metavar="VAR",
                       help="require `Authorization: Bearer $VAR` on every request (the key itself is never printed)")
    _model_options(serve)
    for flag, field in SERVE_FLAGS.items():
        info = ServeConfig.model_fields[field]
        serve.add_argument(flag, dest=field, type=info.annotation, default=info.default, metavar="N",
                           help=f"{(info.description or '').split('; ')[0].rstrip('.')} (default %(default)s)")
    serve.set_defaults(func=_serve)

    chat = sub.add_parser("chat", help="talk to a model: interactive, or one answer with -p")
    chat.add_argument("model", help="`default`, a model folder or .gguf file, or an http(s)://host:port/v1 endpoint")
    chat.add_argument("-p", "--prompt", help="ask one question, print the answer and exit")
    chat.add_argument("--system", help="a system message put before the conversation")
    chat.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    chat.add_argument("--max-tokens", type=int, default=512, help="longest answer in tokens")
    chat.add_argument("--seed", type=int, default=None, help="sampling seed")
    chat.add_argument("--api-key-env", metavar="VAR", default="OPENAI_API_KEY",
                      help="for endpoints: environment variable holding the API key")
    _model_options(chat)
    chat.set_defaults(func=_chat)


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    p.add_argument("--max-batch", type=int, default=32, help="largest generation batch")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for generation (default: one per core; 1 is faster on a busy machine)")


def _models_list(args: argparse.Namespace) -> int:
    from graftlm.models import known_models

    rows = known_models()
    print(format_table(["NAME", "MODEL", "STATUS", "PATH"], [[r["name"], r["model"], r["status"], r["path"]] for r in rows]))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from graftlm.serve import serve
    from graftlm.teacher.local import LocalTeacher

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local models only: never reach for a hub
    if args.model.startswith(("http://", "https://")):
        raise ConfigError(f"graft serve runs a local model, not an endpoint: {args.model}",
                          hint="pass `default`, a model folder or a .gguf file")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: the variable ${args.api_key_env} is not set or empty",
                              hint=f"export {args.api_key_env}=<a secret> before starting the server")
    if args.host not in LOOPBACK and not api_key:
        print(f"warning: serving on {args.host} without an API key; anyone who can reach it can use it "
              "(set --api-key-env)", file=sys.stderr)
    limits = _serve_limits(args)
    config = TeacherConfig(model=args.model, device=args.device, dtype=args.dtype, max_in_flight=args.max_batch,
                           cpu_threads=args.threads)
    teacher = LocalTeacher.from_config(config)
    print(f"graft serve: {teacher.model_id} at http://{args.host}:{args.port}/v1 (batches of up to {args.max_batch}, "
          f"context {teacher.context_length}{', API key required' if api_key else ''}); Ctrl-C stops",
          file=sys.stderr, flush=True)
    serve(teacher, host=args.host, port=args.port, api_key=api_key, limits=limits)
    return 0


def _serve_limits(args: argparse.Namespace) -> ServeConfig:
    from pydantic import ValidationError

    try:
        return ServeConfig(**{field: getattr(args, field) for field in SERVE_FLAGS.values()})
    except ValidationError as e:
        first = e.errors()[0]
        flag = next(f for f, field in SERVE_FLAGS.items() if field == first["loc"][0])
        raise ConfigError(f"{flag}: {first['msg']}", hint=f"see `graft serve --help` for {flag}") from None


def _chat(args: argparse.Namespace) -> int:
    from graftlm.teacher.factory import make_teacher

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = TeacherConfig(model=args.model, device=args.device, dtype=args.dtype, max_in_flight=args.max_batch,
                           api_key_env=args.api_key_env, cpu_threads=args.threads)
    options = SamplingOptions(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)
    history = [{"role": "system", "content": args.system}] if args.system else []
    return asyncio.run(_chat_loop(make_teacher(config), history, options, args.prompt))


async def _chat_loop(teacher: Teacher, history: list[dict[str, str]], options: SamplingOptions,
                     prompt: str | None) -> int:
    try:
        if prompt is not None:
            result = await teacher.chat(history + [{"role": "user", "content": prompt}], options)
            print(result.texts[0].strip())
            return 0
        interactive = sys.stdin.isatty()
        if interactive:
            print(f"chatting with {teacher.model_id}; /exit to quit, /reset to forget the conversation",
                  file=sys.stderr)
        system = history[:1] if history and history[0]["role"] == "system" else []
        while True:
            try:
                line = await asyncio.to_thread(input, "> " if interactive else "")
            except EOFError:
                return 0
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return 0
            if text == "/reset":
                history[:] = list(system)
                continue
            history.append({"role": "user", "content": text})
            result = await teacher.chat(history, options)
            answer = result.texts[0].strip()
            history.append({"role": "assistant", "content": answer})
            print(answer, flush=True)
    finally:
        await teacher.aclose()
