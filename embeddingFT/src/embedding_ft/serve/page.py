"""The search page served at ``/``: type a query, see the hits, their scores and which side found each.

One self-contained HTML document (no external script, style or font): it posts to ``/search``
as one types (250 ms after the last key) or on Enter, and shows each hit's fused score, its
BM25 and dense parts as bars, and badges for the rankers that alone would have ranked it in
the top k. An API key typed in the page is sent as a Bearer token (kept for the tab only).
Texts are set with ``textContent``: a document's text is never parsed as HTML.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>embedding_ft search</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 920px; padding: 18px; color: #1d2430; }
  h1 { font-size: 20px; margin: 0 0 12px; }
  form { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
  #query { flex: 1 1 340px; font-size: 16px; padding: 7px 9px; }
  #top-k { width: 4.5em; padding: 6px; }
  #api-key { width: 11em; padding: 6px; }
  #status { color: #5a6473; margin: 10px 0; min-height: 1.4em; }
  #status[data-state=error] { color: #b3261e; }
  ol { list-style: none; padding: 0; margin: 0; }
  li.hit { border-top: 1px solid #e3e6ea; padding: 10px 0; }
  .head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
  .rank { color: #8a93a0; min-width: 2em; }
  .doc-id { font-weight: 600; }
  .score { font-variant-numeric: tabular-nums; }
  .found { font-size: 12px; border-radius: 9px; padding: 1px 8px; color: #fff; }
  .found.bm25 { background: #c0661b; } .found.dense { background: #2f6fbf; }
  .parts { display: grid; grid-template-columns: 4.5em 180px 5em; gap: 2px 8px; align-items: center;
           font-size: 13px; margin: 6px 0; }
  .bar { height: 8px; background: #eef0f3; border-radius: 4px; overflow: hidden; }
  .bar > span { display: block; height: 100%; }
  .bar.bm25 > span { background: #c0661b; } .bar.dense > span { background: #2f6fbf; }
  .value { font-variant-numeric: tabular-nums; color: #4b5563; }
  .text { margin: 4px 0 0; color: #374151; }
</style>
</head>
<body>
<h1>Search the index</h1>
<form id="search-form" autocomplete="off">
  <input id="query" type="search" placeholder="type a query" autofocus>
  <label>top <input id="top-k" type="number" min="1" max="100" value="10"></label>
  <label><input id="hybrid" type="checkbox" checked> hybrid (BM25 + dense)</label>
  <input id="api-key" type="password" placeholder="API key (if set)">
  <button id="go" type="submit">Search</button>
</form>
<div id="status" data-state="idle">Type a query.</div>
<ol id="hits"></ol>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const status = $("status"), list = $("hits"), keyBox = $("api-key");
  keyBox.value = sessionStorage.getItem("embed-api-key") || "";
  let seq = 0, timer = null, controller = null;

  function setStatus(text, state) { status.textContent = text; status.dataset.state = state; }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function part(grid, name, value, fraction) {
    grid.append(el("span", "", name));
    const bar = el("div", "bar " + name), fill = el("span");
    fill.style.width = Math.max(0, Math.min(1, fraction)) * 100 + "%";
    bar.append(fill);
    grid.append(bar, el("span", "value", value.toFixed(3)));
  }

  function render(body, ms) {
    list.replaceChildren();
    const hits = body.hits || [];
    const maxBm25 = Math.max(1e-9, ...hits.map((h) => h.bm25));
    for (const hit of hits) {
      const li = el("li", "hit");
      li.dataset.id = hit.id;
      const head = el("div", "head");
      head.append(el("span", "rank", "#" + hit.rank), el("span", "doc-id", hit.id),
                  el("span", "score", "score " + hit.score.toFixed(4)));
      for (const side of hit.found_by || []) head.append(el("span", "found " + side, side));
      const grid = el("div", "parts");
      part(grid, "bm25", hit.bm25, hit.bm25 / maxBm25);
      part(grid, "dense", hit.dense, hit.dense);
      const text = hit.text.length > 400 ? hit.text.slice(0, 397) + "..." : hit.text;
      li.append(head, grid, el("p", "text", text));
      list.append(li);
    }
    const how = body.hybrid ? "hybrid: " + body.fusion : "dense";
    setStatus(hits.length + " hits in " + ms + " ms (" + how + ")", hits.length ? "done" : "empty");
  }

  async function search() {
    const query = $("query").value.trim();
    if (!query) { list.replaceChildren(); setStatus("Type a query.", "idle"); return; }
    const mine = ++seq;
    if (controller) controller.abort();
    controller = new AbortController();
    const key = keyBox.value.trim();
    sessionStorage.setItem("embed-api-key", key);
    const headers = {"Content-Type": "application/json"};
    if (key) headers["Authorization"] = "Bearer " + key;
    const payload = {query, top_k: Math.max(1, parseInt($("top-k").value, 10) || 10), hybrid: $("hybrid").checked};
    setStatus("searching…", "busy");
    const start = performance.now();
    try {
      const reply = await fetch("search", {method: "POST", headers, body: JSON.stringify(payload),
                                           signal: controller.signal});
      const body = await reply.json();
      if (mine !== seq) return;
      if (!reply.ok) { setStatus((body.error && body.error.message) || ("HTTP " + reply.status), "error"); return; }
      render(body, Math.round(performance.now() - start));
    } catch (err) {
      if (err.name !== "AbortError" && mine === seq) setStatus("request failed: " + err.message, "error");
    }
  }

  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); clearTimeout(timer); search(); });
  $("query").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 250); });
  $("hybrid").addEventListener("change", search);
})();
</script>
</body>
</html>
"""
