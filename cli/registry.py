"""``podplug push`` and ``podplug pull``: plugin modules as OCI artifacts.

``push`` checks that the file is a podplug module (it compiles, its imports
and exports are the ABI's) before anything is uploaded, and prints the
reference pinned by digest: what ``spec.plugins[].module.oci`` and ``cosign
sign`` take. ``pull`` verifies the digests, and with ``--key`` a cosign
signature, before it writes the module.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from podplug import oci
from podplug.oci.artifact import TITLE_ANNOTATION
from podplug.runtime import Engine

from ._common import read_bytes, read_module
from .main import UsageError
from .run import warn_if_stale


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="push a plugin module to an OCI registry",
                       description="Upload PLUGIN.wasm as a Wasm OCI artifact and print "
                       "REF pinned by its manifest digest.")
    p.add_argument("plugin", metavar="PLUGIN.wasm")
    p.add_argument("ref", metavar="REF", help="registry/repository[:tag]")
    p.add_argument("--annotation", "-a", action="append", default=[], metavar="KEY=VALUE",
                   help="manifest annotation (repeatable)")
    _connection_options(p)
    p.set_defaults(func=push)

    q = sub.add_parser("pull", help="pull a plugin module from an OCI registry",
                       description="Download the module REF names, checking every digest "
                       "(and, with --key, a cosign signature) before writing it.")
    q.add_argument("ref", metavar="REF", help="registry/repository[:tag][@sha256:...]")
    q.add_argument("--output", "-o", metavar="FILE",
                   help="where to write it (default: NAME.wasm, NAME the repository's last part)")
    q.add_argument("--key", "-k", action="append", default=[], metavar="cosign.pub",
                   help="require a cosign signature by this public key (repeatable: any of them)")
    _connection_options(q)
    q.set_defaults(func=pull)


def _connection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("registry connection")
    g.add_argument("--ca-file", metavar="PEM", help="extra CA bundle for the registry's TLS")
    g.add_argument("--docker-config", metavar="FILE",
                   help="credentials file (default $DOCKER_CONFIG/config.json or "
                   "~/.docker/config.json, as `docker login` writes it)")


def _parse(text: str) -> oci.Reference:
    try:
        return oci.Reference.parse(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _registry(args: argparse.Namespace, ref: oci.Reference) -> oci.Registry:
    if args.ca_file and not Path(args.ca_file).is_file():
        raise UsageError(f"--ca-file {args.ca_file}: no such file")
    if args.docker_config and not Path(args.docker_config).is_file():
        raise UsageError(f"--docker-config {args.docker_config}: no such file")
    creds = oci.load_docker_config(args.docker_config)
    return oci.Registry(ref.registry, credentials=creds.get(ref.registry), ca_file=args.ca_file)


def push(args: argparse.Namespace) -> int:
    ref = _parse(args.ref)
    if ref.digest is not None:
        raise UsageError(f"{ref}: push to a tag (or a bare repository), not a digest")
    wasm = read_module(args.plugin)
    warn_if_stale(args.plugin)
    annotations = {TITLE_ANNOTATION: Path(args.plugin).name}
    with Engine() as engine:  # refuse what the operator would refuse, before uploading
        info = engine.load(wasm, Path(args.plugin).stem).info
    meta = info.metadata or {}
    for key in ("name", "version"):
        if isinstance(meta.get(key), str):
            annotations[f"io.podplug.plugin.{key}"] = meta[key]
    for item in args.annotation:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--annotation {item!r}: expected KEY=VALUE")
        annotations[key] = value
    registry = _registry(args, ref)
    try:
        pinned = oci.push(registry, ref, wasm, annotations)
    finally:
        registry.close()
    print(f"pushed {args.plugin} ({len(wasm):,} bytes, module sha256:{info.digest})",
          file=sys.stderr)
    print(pinned)
    return 0


def pull(args: argparse.Namespace) -> int:
    ref = _parse(args.ref)
    keys = []
    for path in args.key:
        try:
            keys.append(oci.PublicKey(path, read_bytes(path)))
        except ValueError as e:
            raise UsageError(str(e)) from None
    registry = _registry(args, ref)
    try:
        pulled = oci.pull(registry, ref, keys=keys or None)
    finally:
        registry.close()
    out = Path(args.output or f"{ref.repository.rsplit('/', 1)[-1]}.wasm")
    out.write_bytes(pulled.wasm)
    signed = f", signed by {pulled.signed_by}" if pulled.signed_by else ", signature not checked"
    print(f"pulled {pulled.reference} -> {out} ({len(pulled.wasm):,} bytes, module "
          f"{pulled.module_digest}{signed})", file=sys.stderr)
    return 0
