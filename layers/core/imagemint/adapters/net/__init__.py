"""Outbound HTTP guarded against SSRF: :mod:`.fetch` (the entry points: image fetch, webhook post),
:mod:`.policy` (which URLs and addresses), :mod:`.transport` (pinned connections, deadline, redirects),
:mod:`.sniff` (image type and size from the first bytes)."""
