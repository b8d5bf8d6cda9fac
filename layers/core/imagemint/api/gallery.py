"""The gallery: ``GET /gallery`` (the key's account), ``GET /api/gallery`` (its data) and ``GET
/moments/{ref}`` (one public moment).

* ``GET /moments/{ref}`` (public, no key; ``ref`` as ``/api/verify`` takes it: a job id, an Arweave id
  or ``<chainId>:<contract>:<tokenId>``): one job's images, prompt, model, cost, Arweave and token
  links and the verify verdict, rendered on the server. No script at all. Only a job already public
  (archived or minted) has a page; any other is a 404.
* ``GET /gallery``: a static page with no data in it. A browser cannot send a Bearer header when it
  navigates, and a key never goes in a URL, so the page's one script (allowed by its hash) asks for
  the key, keeps it in ``sessionStorage`` (this tab only), and calls ``GET /api/gallery`` with
  ``Authorization: Bearer``.
* ``GET /api/gallery`` (``Authorization: Bearer`` or ``x-api-key``): the account's most recent jobs
  with images (:data:`imagemint.domain.gallery.GALLERY_LIMIT`), each verified, as data
  (``moments``) and as the escaped HTML the page shows (``html``).

Every string a user or a record put there is escaped (:func:`html.escape`); the pages carry a strict
``Content-Security-Policy`` (nothing but the page's own hashed style and script; images only from the
bucket's signed URLs), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import urllib.parse
from typing import Any

from imagemint.api.http import SECURITY_HEADERS, HttpRequest, guarded, plain_error_response, response
from imagemint.domain import auth, gallery, verify
from imagemint.errors import NotFound
from imagemint.wiring import Deps

CSS = """
:root { color-scheme: light; --ink: #1d232a; --muted: #5b6670; --line: #dde3e8; --ok: #17663a;
  --ok-bg: #e6f4ea; --bad: #a4161a; --bad-bg: #fdeaea; --skip: #5b6670; --skip-bg: #eef1f4; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #f6f8fa; }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 2px 0 0; color: var(--muted); font-size: 13px; }
main { max-width: 1100px; margin: 0 auto; padding: 20px 24px 40px; }
.moment { display: grid; grid-template-columns: minmax(0, 360px) minmax(0, 1fr); gap: 22px;
  background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px; margin: 0 0 20px; }
.images img { display: block; width: 100%; height: auto; border-radius: 6px; border: 1px solid var(--line);
  margin: 0 0 8px; background: #eef1f4; }
.prompt { margin: 0 0 10px; font-size: 17px; font-weight: 600; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 4px 14px; margin: 0 0 14px; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
a { color: #0b5cad; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
.verdict { border-top: 1px solid var(--line); padding-top: 10px; }
.verdict h3 { margin: 0 0 6px; font-size: 15px; }
.verdict ul { list-style: none; margin: 0; padding: 0; }
.verdict li { display: grid; grid-template-columns: 88px minmax(0, 1fr); gap: 10px; padding: 5px 0;
  border-bottom: 1px dashed var(--line); }
.verdict li:last-child { border-bottom: 0; }
.state { justify-self: start; text-align: center; font-size: 12px; font-weight: 700; border-radius: 999px;
  padding: 1px 10px; height: fit-content; white-space: nowrap; }
.state.ok { color: var(--ok); background: var(--ok-bg); }
.state.broken { color: var(--bad); background: var(--bad-bg); }
.state.not-checked { color: var(--skip); background: var(--skip-bg); }
.summary.ok { color: var(--ok); }
.summary.broken { color: var(--bad); }
.reason { color: var(--muted); font-size: 13px; }
form { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; background: #fff;
  border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px; margin: 0 0 20px; }
input { font: inherit; padding: 6px 10px; border: 1px solid var(--line); border-radius: 6px;
  min-width: 22em; }
button { font: inherit; padding: 6px 14px; border: 0; border-radius: 6px; background: #0b5cad; color: #fff;
  cursor: pointer; }
button.quiet { background: #eef1f4; color: var(--ink); }
#status { color: var(--muted); }
@media (max-width: 720px) { .moment { grid-template-columns: 1fr; } }
"""

# The account gallery's one script: ask for the key, keep it for this tab, fetch the escaped HTML of the
# account's moments with Authorization: Bearer and show it. The key never goes in a URL.
SCRIPT = """
(function () {
  var SLOT = "imagemint.gallery.key";
  var form = document.getElementById("key-form");
  var input = document.getElementById("key");
  var forget = document.getElementById("forget");
  var status = document.getElementById("status");
  var out = document.getElementById("moments");
  function say(text) { status.textContent = text; }
  function ask(text) {
    sessionStorage.removeItem(SLOT);
    form.hidden = false; forget.hidden = true; out.replaceChildren(); say(text);
  }
  function load(key) {
    say("Loading and verifying your images\\u2026");
    fetch("api/gallery", {headers: {"Authorization": "Bearer " + key}, cache: "no-store",
                          credentials: "omit", referrerPolicy: "no-referrer"})
      .then(function (r) {
        return r.json().then(function (body) { return {status: r.status, body: body}; });
      })
      .then(function (x) {
        if (x.status !== 200) { ask((x.body && x.body.error) || ("The API answered " + x.status)); return; }
        var doc = new DOMParser().parseFromString(x.body.html, "text/html");
        out.replaceChildren.apply(out, Array.prototype.slice.call(doc.body.childNodes));
        form.hidden = true; forget.hidden = false;
        say(x.body.moments.length ? "" : "No images yet.");
      })
      .catch(function (e) { say("Could not load the gallery: " + e); });
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var key = input.value.trim();
    input.value = "";
    if (!key) { say("Enter an API key."); return; }
    sessionStorage.setItem(SLOT, key);
    load(key);
  });
  forget.addEventListener("click", function () { ask("Key forgotten."); });
  var kept = sessionStorage.getItem(SLOT);
  if (kept) { load(kept); } else { form.hidden = false; }
})();
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


STYLE_HASH = _hash(CSS)
SCRIPT_HASH = _hash(SCRIPT)


def csp(img_origin: str, *, script: bool) -> str:
    """The pages' policy: nothing but their own hashed style (and script), images from the bucket only."""
    parts = [
        "default-src 'none'",
        f"img-src {img_origin}",
        f"style-src {STYLE_HASH}",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    if script:
        parts[2:2] = [f"script-src {SCRIPT_HASH}", "connect-src 'self'"]
    return "; ".join(parts)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _a(url: str | None, text: str) -> str:
    """A link to an http(s) URL (any other is shown as text), opened without a referrer."""
    if url and url.startswith(("https://", "http://")):
        return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(text)}</a>'
    return _e(text)


def _cost(cost: dict[str, Any]) -> str:
    text = f"{cost['credits']:,} credits (${cost['credits_usd']:.4f})"
    if cost.get("credits_refunded"):
        text += f", {cost['credits_refunded']:,} refunded"
    text += f"; generation ${cost['cost_usd']:.4f}"
    if cost.get("provenance_cost_usd") is not None:
        text += f"; provenance about ${cost['provenance_cost_usd']:.4f} (estimate)"
    return _e(text)


def _token(token: dict[str, Any] | None) -> str:
    if not token:
        return "not minted"
    ref = f"token {token['token_id']} of {token['contract']} on chain {token['chain_id']}"
    if token.get("explorer_url"):
        return _a(token["explorer_url"], ref)
    return _e(ref) + (" (local chain: no explorer)" if token.get("local") else "")


def render_moment(view: dict[str, Any], *, heading: str = "h2", page_link: bool = True) -> str:
    """One moment as an ``<article>``: every value escaped."""
    images = "".join(
        f'<img src="{_e(img["url"])}" width="{int(img["width"])}" height="{int(img["height"])}" '
        f'alt="{_e(view["prompt"])}">'
        for img in view["images"]
    )
    arweave = ", ".join(_a(a.get("url"), a.get("uri") or a.get("id") or "") for a in view["arweave"])
    md = view.get("metadata")
    model = view["model"] + (
        f" (asked for {view['requested_model']})" if view["requested_model"] != view["model"] else ""
    )
    rows = [
        ("Model", _e(f"{model} on {view['provider']}, {view['size']}")),
        ("Cost", _cost(view["cost"])),
        (
            "Made",
            _e(f"{view['created']}, {view['status']}") + f" &middot; job <code>{_e(view['job_id'])}</code>",
        ),
        ("Arweave", arweave or "not archived"),
        ("Metadata", _a(md.get("url"), md.get("uri") or md.get("id") or "") if md else "not archived"),
        ("Token", _token(view.get("token"))),
    ]
    if page_link and view.get("page_url"):
        rows.append(("Page", _a(view["page_url"], "public page of this moment")))
    if view.get("verify_url"):
        rows.append(("Verify", _a(view["verify_url"], "the verdict as JSON (GET /api/verify)")))
    facts = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    verdict = view["verdict"]
    summary_cls = "ok" if verdict["ok"] else ("broken" if "Broken" in verdict["summary"] else "")
    items = "".join(
        f'<li class="link-{_e(r["link"])}"><span class="state {_e(r["state"].replace(" ", "-"))}">'
        f"{_e(r['state'])}</span><span><strong>{_e(r['label'])}</strong>: "
        f'<span class="reason">{_e(r["reason"])}</span></span></li>'
        for r in verdict["links"]
    )
    return (
        f'<article class="moment" id="job-{_e(view["job_id"])}">'
        f'<div class="images">{images}</div>'
        f'<div class="facts"><{heading} class="prompt">{_e(view["prompt"])}</{heading}><dl>{facts}</dl>'
        f'<section class="verdict"><h3>Provenance: <span class="summary {summary_cls}">'
        f"{_e(verdict['summary'])}</span></h3><ul>{items}</ul></section></div></article>"
    )


def _page(title: str, body: str, *, script: bool) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        + body
        + (f"<script>{SCRIPT}</script>" if script else "")
        + "</body></html>"
    )


def moment_page(view: dict[str, Any]) -> str:
    head = (
        "<header><h1>imagemint moment</h1><p>An image, its Content Credentials, its permanent Arweave "
        "copy and its token, checked link by link.</p></header>"
    )
    return _page(
        f"imagemint moment: {view['prompt'][:80]}",
        head + f"<main>{render_moment(view, page_link=False)}</main>",
        script=False,
    )


def gallery_page() -> str:
    body = (
        "<header><h1>imagemint gallery</h1><p>Your account's recent images, each with its provenance "
        "checked. Your key stays in this tab (sessionStorage) and is sent only as an Authorization "
        "header.</p></header><main>"
        '<form id="key-form" method="post" hidden><label for="key">API key</label>'
        '<input id="key" type="password" autocomplete="off" spellcheck="false" placeholder="im_sk_...">'
        '<button type="submit">Show my gallery</button></form>'
        '<p><span id="status"></span> <button id="forget" class="quiet" type="button" hidden>'
        "Forget the key</button></p>"
        '<div id="moments"></div>'
        "<noscript><p>This page needs JavaScript to ask for your key. Each moment's public page "
        "(/moments/{job id}) needs none.</p></noscript></main>"
    )
    return _page("imagemint gallery", body, script=True)


def _text(status: int, body: str, policy: str) -> Any:
    """An HTML answer with the page's policy (named as :mod:`imagemint.api.openapi`'s text answers)."""
    from aws_lambda_powertools.event_handler import Response

    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={
            **SECURITY_HEADERS,
            "Content-Security-Policy": policy,
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def handle_shell(event: dict[str, Any], deps: Deps) -> Any:
    """``GET /gallery``: the page that asks for the key (no data in it)."""

    @guarded(plain_error_response)
    def run() -> Any:
        return _text(200, gallery_page(), csp(gallery.image_origin(deps), script=True))

    return run()


def handle_account(event: dict[str, Any], deps: Deps) -> Any:
    """``GET /api/gallery``: the key's account's recent moments, verified, as data and as escaped HTML."""

    @guarded(plain_error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        account = auth.authenticate(deps.accounts, deps.settings, req.api_key())
        views = [
            gallery.moment_view(deps, job, req.base_url)
            for job in gallery.recent_jobs(deps, account.account_id)
        ]
        body = {
            "account_id": account.account_id,
            "moments": views,
            "html": "".join(render_moment(v) for v in views),
        }
        return response(200, body, {"Cache-Control": "no-store"})

    return run()


def handle_moment(event: dict[str, Any], deps: Deps) -> Any:
    """``GET /moments/{ref}``: one public moment's page."""

    @guarded(plain_error_response)
    def run() -> Any:
        req = HttpRequest.from_event(event, public_base_url=deps.settings.public_base_url)
        ref = urllib.parse.unquote(req.path_params.get("ref", ""))
        job, _ = verify.resolve(deps, ref)
        if not gallery.is_public(job) or not (job.result or {}).get("images"):
            raise NotFound("No such moment")
        view = gallery.moment_view(deps, job, req.base_url)
        return _text(200, moment_page(view), csp(gallery.image_origin(deps), script=False))

    return run()
