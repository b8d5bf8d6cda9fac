"""Benchmark: the generate step's peak memory for its largest request (sizes the Generate function).

    python tests/bench/generate_memory.py [--n 10] [--size 3840x2160] [--kind noise|photo]

A loopback server answers ``POST /v1/images/generations`` as OpenAI does (``{"data": [{"b64_json"}]}``)
with ``n`` PNGs of ``size``: ``noise`` is the incompressible worst case (a PNG as large as the raw
pixels), ``photo`` a smooth gradient with grain (about what a generated picture compresses to). In a
fresh interpreter the real :class:`~imagemint.adapters.providers.openai_provider.OpenAIProvider`
(the openai SDK, its JSON parsing, our base64 decoding and sniffing) generates them, as the step does,
and each image is then handed to a store that reads it (as the S3 upload does). The process's peak
RSS is printed, with the interpreter's own RSS before the call. Nothing here asserts a size.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
sys.path[:0] = json.loads(sys.argv[2])


def status_mb(field):
    # VmHWM/VmRSS of this process's own memory (ru_maxrss would carry the parent's peak across fork+exec)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


from imagemint.adapters.providers.openai_provider import OpenAIProvider
from imagemint.domain.ports import ProviderCall
import hashlib, openai
before = status_mb("VmRSS")
n, w, h = (int(x) for x in sys.argv[3:6])
client = openai.OpenAI(api_key="sk-bench", base_url=sys.argv[1], max_retries=0, timeout=600)
result = OpenAIProvider(client).generate(
    ProviderCall(prompt="a koi", provider_model="gpt-image-2", n=n, width=w, height=h, size=f"{w}x{h}")
)
stored = sum(len(hashlib.sha256(img.data).digest()) and len(img.data) for img in result.images)
peak = status_mb("VmHWM")
print(json.dumps({"before_mb": before, "peak_mb": peak, "images": len(result.images), "bytes": stored}))
"""


def png(width: int, height: int, kind: str, seed: int) -> bytes:
    from PIL import Image

    if kind == "noise":
        img = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        grain = Image.effect_noise((width, height), 24).convert("RGB")
        base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
        img = Image.blend(base, grain, 0.25 + seed % 3 * 0.05)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--size", default="3840x2160")
    p.add_argument("--kind", choices=["noise", "photo"], default="noise")
    args = p.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    images = [png(width, height, args.kind, i) for i in range(args.n)]
    body = json.dumps(
        {"created": 1, "data": [{"b64_json": base64.b64encode(raw).decode()} for raw in images]}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        layers = [str(ROOT / "layers" / name) for name in ("core", "providers")]
        r = subprocess.run(
            [sys.executable, "-c", CHILD, f"http://127.0.0.1:{server.server_port}/v1", json.dumps(layers)]
            + [str(args.n), str(width), str(height)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.shutdown()
    out = json.loads(r.stdout.strip().splitlines()[-1])
    mean = sum(map(len, images)) / len(images) / 2**20
    print(
        f"n={args.n} {args.size} {args.kind}: PNG {mean:.1f} MB each, answer {len(body) / 2**20:.0f} MB; "
        f"RSS before the call {out['before_mb']:.0f} MB, peak {out['peak_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
