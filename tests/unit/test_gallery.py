"""The gallery without a browser: the verdict as a person reads it, the HTML (every value escaped), the
pages' Content-Security-Policy, and the three routes through the real handler on in-memory stores.
The browser test is tests/integration/test_gallery_browser.py."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from events import bearer, http_event, invoke
from imagemint.api import gallery as pages
from imagemint.domain import auth, gallery
from imagemint.domain.models import Job

HOSTILE = "<img src=x onerror=alert(1)> & \"quoted\" 'single' </article><script>alert(2)</script>"
JOB_ID = "11111111-1111-4111-8111-111111111111"


def _job(**kw: Any) -> Job:
    return Job(job_id=JOB_ID, account_id="a", dialect="legacy", model="gpt-image-2", **kw)


def _link(ok: bool, **checks: bool) -> dict[str, Any]:
    return {"ok": ok, "checks": checks}


def _report(**links: Any) -> dict[str, Any]:
    return {"ok": all(v is None or v["ok"] for v in links.values()), "links": links}


def _view(prompt: str = HOSTILE, **over: Any) -> dict[str, Any]:
    view = {
        "job_id": JOB_ID,
        "status": "SUCCEEDED",
        "created": "2026-11-28 12:00 UTC",
        "prompt": prompt,
        "model": "gpt-image-2",
        "requested_model": "gpt-image-2",
        "provider": "local",
        "size": "1024x1024",
        "cost": {
            "credits": 211,
            "credits_refunded": 0,
            "credits_usd": 0.211,
            "cost_usd": 0.21072,
            "provenance_cost_usd": None,
        },
        "images": [{"url": "https://bucket.test/images/x/0.png?a=1&b=2", "width": 1024, "height": 1024}],
        "arweave": [{"id": "A" * 43, "uri": "ar://" + "A" * 43, "url": "https://arweave.test/" + "A" * 43}],
        "metadata": None,
        "token": None,
        "page_url": None,
        "verify_url": f"https://api.test/api/verify/{JOB_ID}",
        "verdict": gallery.readout(None, _job(), "boom <b>"),
    }
    view.update(over)
    return view


# --------------------------------------------------------------------------- the verdict, read


def test_readout_says_ok_for_every_link_that_holds():
    ok = _link(True, sha256=True)
    out = gallery.readout(_report(image=ok, arweave=ok, metadata=ok, token=ok), _job())
    assert out["ok"] and out["summary"] == "Verified"
    assert [(r["link"], r["state"]) for r in out["links"]] == [
        ("image", "ok"),
        ("arweave", "ok"),
        ("metadata", "ok"),
        ("token", "ok"),
    ]
    assert "trusted" in out["links"][0]["reason"]


def test_readout_names_what_broke_in_words_and_which_image():
    image = _link(True, sha256=True)
    arweave = {
        **_link(
            False, **{"gateway_bytes_are_the_signed_image[1]": False, "id_is_hash_of_signature[0]": True}
        ),
        "items": [{"error": None}, {"error": "the gateway answered 404"}],
    }
    token = _link(False, uri_is_the_metadata=False, owner_holds_it=True)
    out = gallery.readout(_report(image=image, arweave=arweave, metadata=None, token=token), _job())
    states = {r["link"]: (r["state"], r["reason"]) for r in out["links"]}
    assert states["image"][0] == "ok"
    assert states["arweave"] == (
        "broken",
        "the gateway serves other bytes than the signed image (image 2); the gateway answered 404",
    )
    assert states["token"] == ("broken", "the token's on-chain uri is not the archived metadata")
    assert states["metadata"] == ("not checked", "no metadata archived")
    assert not out["ok"] and out["summary"] == "Broken at Arweave copy, Token"


def test_readout_says_why_a_link_was_not_checked():
    partial = _job(resume_from="metadata", provenance_error={"code": "x", "message": "gateway down"})
    out = gallery.readout(_report(image=_link(True), arweave=_link(True), metadata=None, token=None), partial)
    reasons = {r["link"]: r["reason"] for r in out["links"]}
    assert reasons["metadata"] == "no metadata archived: the metadata step failed (gateway down)"
    assert reasons["token"] == "not minted: the metadata step failed (gateway down)"
    plain = gallery.readout(_report(image=_link(True), arweave=None, metadata=None, token=None), _job())
    assert [r["reason"] for r in plain["links"][1:]] == ["not archived", "no metadata archived", "not minted"]
    assert plain["ok"] and plain["summary"] == "Verified"
    nothing = gallery.readout(None, _job(), "the gateway is down")
    assert {r["state"] for r in nothing["links"]} == {"not checked"} and nothing["summary"] == "Not checked"
    assert "the gateway is down" in nothing["links"][0]["reason"]


def test_token_links_go_to_an_explorer_only_for_base_chains(deps):
    moment = {"chainId": 8453, "contractAddress": "0x" + "ab" * 20, "tokenId": "7", "hash": "0x" + "cd" * 32}
    local = gallery.token_link(deps.settings, moment)  # the embedded chain says 8453 too: no explorer
    assert local["local"] and local["explorer_url"] is None and local["tx_url"] is None
    rpc = deps.settings.model_copy(update={"chain_mode": "rpc"})
    base = gallery.token_link(rpc, moment)
    assert base["explorer_url"] == f"https://basescan.org/nft/{moment['contractAddress']}/7"
    assert base["tx_url"] == f"https://basescan.org/tx/{moment['hash']}"
    sepolia = gallery.token_link(rpc, {**moment, "chainId": 84532})
    assert sepolia["explorer_url"].startswith("https://sepolia.basescan.org/nft/")
    assert gallery.token_link(rpc, {**moment, "chainId": 31337})["explorer_url"] is None


# --------------------------------------------------------------------------- the HTML


def test_every_value_is_escaped():
    hostile_url = 'https://bucket.test/"><script>alert(3)</script>'
    page = pages.moment_page(
        _view(
            model="m<b>",
            requested_model="x",
            provider='p"><i>',
            images=[{"url": hostile_url, "width": 1, "height": 1}],
            token={"token_id": "1", "contract": "<c>", "chain_id": 8453, "local": True},
        )
    )
    body = page.split("</style>", 1)[1]
    assert "<script" not in body and "<img src=x" not in body and "<b>" not in body and "<i>" not in body
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot; &#x27;single&#x27;" in body
    assert 'src="https://bucket.test/&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"' in body
    assert "m&lt;b&gt; (asked for x) on p&quot;&gt;&lt;i&gt;" in body
    assert "boom &lt;b&gt;" in body  # a verdict's reason, too
    assert len(re.findall(r"<article\b", body)) == 1 and body.count("</article>") == 1


def test_only_http_links_are_links():
    view = _view(arweave=[{"id": "A", "uri": "ar://A", "url": "javascript:alert(1)"}], page_url=None)
    html = pages.render_moment(view)
    assert "javascript:" not in html.split("ar://A")[0][-200:] and 'href="javascript' not in html
    assert ">ar://A</a>" not in html and "<dd>ar://A</dd>" in html  # shown as text
    linked = pages.render_moment(_view())
    assert (
        f'<a href="https://arweave.test/{"A" * 43}" rel="noopener noreferrer">ar://{"A" * 43}</a>' in linked
    )


def test_cost_and_token_read_as_the_job_records_them():
    token = {
        "token_id": "3",
        "contract": "0xC",
        "chain_id": 8453,
        "local": False,
        "explorer_url": "https://basescan.org/nft/0xC/3",
    }
    cost = {**_view()["cost"], "credits_refunded": 11, "provenance_cost_usd": 0.75}
    html = pages.render_moment(_view(token=token, cost=cost))
    assert (
        "211 credits ($0.2110), 11 refunded; generation $0.2107; provenance about $0.7500 (estimate)" in html
    )
    assert (
        '<a href="https://basescan.org/nft/0xC/3" rel="noopener noreferrer">token 3 of 0xC on chain 8453</a>'
        in html
    )
    local = pages.render_moment(_view(token={**token, "local": True, "explorer_url": None}))
    assert "token 3 of 0xC on chain 8453 (local chain: no explorer)" in local and "basescan" not in local


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_policy_allows_exactly_the_pages_own_style_and_script():
    shell = pages.gallery_page()
    style = re.search(r"<style>(.*?)</style>", shell, re.S).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", shell, re.S)
    assert len(scripts) == 1
    policy = pages.csp("https://bucket.test", script=True)
    assert f"style-src {_sha(style)}" in policy and f"script-src {_sha(scripts[0])}" in policy
    assert (
        "unsafe" not in policy and "default-src 'none'" in policy and "img-src https://bucket.test;" in policy
    )
    assert "connect-src 'self'" in policy and "form-action 'none'" in policy
    moment = pages.moment_page(_view())
    assert "<script" not in moment
    public = pages.csp("https://bucket.test", script=False)
    assert "script-src" not in public and "connect-src" not in public
    # The key is sent as a header, never in a URL, and kept for this tab only.
    assert (
        "Authorization" in scripts[0] and "sessionStorage" in scripts[0] and "localStorage" not in scripts[0]
    )
    assert "?key" not in scripts[0] and "name=" not in shell.split("<form", 1)[1].split("</form>")[0]


# --------------------------------------------------------------------------- the routes


def _legacy(account_id: str, prompt: str) -> str:
    r = invoke(
        "legacy_image",
        http_event("GET", "/api/image/generate", query={"prompt": prompt, "account_id": account_id}),
    )
    assert r.status == 200, r.text[:300]
    return r.json["jobId"]


def _page_headers(reply: Any) -> None:
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    policy = reply.headers["content-security-policy"]
    assert "img-src memory://bucket;" in policy and "unsafe" not in policy


def test_gallery_page_is_a_static_shell(deps):
    reply = invoke("gallery", http_event("GET", "/gallery"))
    assert reply.status == 200
    _page_headers(reply)
    assert "script-src 'sha256-" in reply.headers["content-security-policy"]
    assert 'id="key-form"' in reply.text and "<article" not in reply.text


def test_account_gallery_needs_the_key_and_shows_only_its_jobs_newest_first(deps, account):
    acc, key = account
    assert invoke("gallery", http_event("GET", "/api/gallery")).status == 401
    bad = invoke("gallery", http_event("GET", "/api/gallery", headers=bearer("im_sk_" + "x" * 43)))
    assert bad.status == 401
    first = _legacy(acc.account_id, "a koi")
    second = _legacy(acc.account_id, HOSTILE)
    other, other_key = auth.create_account(deps.accounts, deps.settings, name="Other", credits=1000)
    theirs = _legacy(other.account_id, "not yours")

    reply = invoke("gallery", http_event("GET", "/api/gallery", headers=bearer(key)))
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    body = reply.json
    assert body["account_id"] == acc.account_id
    assert [m["job_id"] for m in body["moments"]] == [second, first]
    shown = body["moments"][0]
    assert shown["prompt"] == HOSTILE and shown["cost"]["credits"] > 0 and shown["images"][0]["url"]
    assert [r["link"] for r in shown["verdict"]["links"]] == ["image", "arweave", "metadata", "token"]
    assert "<img src=x" not in body["html"] and "&lt;img src=x onerror=alert(1)&gt;" in body["html"]
    assert theirs not in reply.text
    mine_too = invoke("gallery", http_event("GET", "/api/gallery", headers={"x-api-key": other_key}))
    assert [m["job_id"] for m in mine_too.json["moments"]] == [theirs]


def test_account_gallery_is_bounded(deps, account):
    acc, key = account
    jobs = [_legacy(acc.account_id, f"koi {i}") for i in range(3)]
    assert [j.job_id for j in gallery.recent_jobs(deps, acc.account_id, limit=2)] == jobs[:0:-1]


def test_moment_page_is_public_only_once_archived_or_minted(deps, account):
    acc, _ = account
    job_id = _legacy(acc.account_id, HOSTILE)
    ev = http_event("GET", f"/moments/{job_id}", path_params={"ref": job_id})
    assert invoke("gallery", ev).status == 404  # not archived: its prompt and image stay private

    job = deps.jobs.get(job_id)
    result = {
        **job.result,
        "archive": [{"id": "B" * 43, "uri": "ar://" + "B" * 43, "url": "javascript:alert(1)"}],
    }
    deps.jobs.update(job_id, result=result)
    reply = invoke("gallery", ev)
    assert reply.status == 200
    _page_headers(reply)
    assert "script-src" not in reply.headers["content-security-policy"]
    body = reply.text.split("</style>", 1)[1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "<img src=x" not in body and "<script" not in body
    assert 'href="javascript' not in body
    # The archived item is not on the gateway: that link reads broken, in words.
    assert '<li class="link-arweave"><span class="state broken">broken</span>' in body

    missing = "22222222-2222-4222-8222-222222222222"
    assert (
        invoke("gallery", http_event("GET", f"/moments/{missing}", path_params={"ref": missing})).status
        == 404
    )
    assert invoke("gallery", http_event("GET", "/moments/nope", path_params={"ref": "nope"})).status == 400


@pytest.mark.parametrize("name", ["gallery_page.json", "moment_page.json", "gallery.json"])
def test_samples_reach_their_route(deps, name):
    from events import load_event

    reply = invoke("gallery", load_event(name))
    assert reply.status == {"gallery_page.json": 200, "moment_page.json": 404, "gallery.json": 401}[name]
