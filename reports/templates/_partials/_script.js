{% raw %}
(function () {
  "use strict";
  // Model text is only ever set with textContent or setAttribute: this script never parses HTML strings.
  var SVGNS = "http://www.w3.org/2000/svg";
  var DATA = JSON.parse(document.getElementById("cards-data").textContent);
  var cards = DATA.cards, pics = DATA.images, palette = DATA.palette, pageSize = DATA.pageSize;

  function h(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function fmt(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d === undefined ? 3 : d); }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }

  // ---- sortable tables ---------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      var button = th.querySelector("button.sort");
      if (!button) return;
      button.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var numeric = th.getAttribute("data-type") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
          var c = numeric ? (parseFloat(x) - parseFloat(y)) : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  // ---- charts ------------------------------------------------------------------------
  var W = 200, H = 132, L = 28, R = 6, T = 16, B = 24;
  function px(x) { return (L + x * (W - L - R)).toFixed(1); }
  function py(y) { return (T + (1 - y) * (H - T - B)).toFixed(1); }
  function chart(title, label, series, point, xLabel, marks) {
    var svg = sv("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label });
    svg.appendChild(sv("title", {}, label));
    svg.appendChild(sv("text", { x: L, y: 10 }, title));
    [0, 0.5, 1].forEach(function (t) {
      svg.appendChild(sv("line", { x1: L, x2: W - R, y1: py(t), y2: py(t), stroke: "#e6e9ed" }));
      svg.appendChild(sv("text", { x: L - 3, y: Number(py(t)) + 3, "text-anchor": "end" }, t));
      svg.appendChild(sv("text", { x: px(t), y: H - 12, "text-anchor": "middle" }, t));
    });
    svg.appendChild(sv("text", { x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle" }, xLabel));
    series.forEach(function (s) {
      if (!s.x || !s.y) return;
      var pts = [];
      for (var i = 0; i < s.x.length && i < s.y.length; i++) {
        if (s.x[i] !== null && s.y[i] !== null) pts.push(px(s.x[i]) + "," + py(s.y[i]));
      }
      var line = sv("polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.8 });
      if (s.dash) line.setAttribute("stroke-dasharray", "4 2");
      svg.appendChild(line);
    });
    if (marks) {  // regenerated answers: right (1) or wrong (0), as small squares
      for (var j = 0; j < marks.x.length; j++) {
        if (marks.y[j] === null) continue;
        var sq = sv("rect", { x: Number(px(marks.x[j])) - 2, y: Number(py(marks.y[j])) - 2, width: 4, height: 4,
          fill: marks.y[j] >= 0.5 ? "#2b8a3e" : "#cf222e" });
        sq.appendChild(sv("title", {}, "answer " + (marks.y[j] >= 0.5 ? "right" : "wrong") + " with " +
          pct(marks.x[j]) + " removed"));
        svg.appendChild(sq);
      }
    }
    if (point) {
      var c = sv("circle", { cx: px(point.x), cy: py(point.y), r: 4, fill: "#2b8a3e", stroke: "#fff", "stroke-width": 1.5 });
      c.appendChild(sv("title", {}, point.label));
      svg.appendChild(c);
      svg.appendChild(sv("text", { x: Math.min(Number(px(point.x)) + 5, W - 60), y: Math.max(Number(py(point.y)) - 5, T + 8) }, point.text));
    }
    return svg;
  }
  function interp(xs, ys, x) {
    for (var i = 1; i < xs.length; i++) {
      if (x <= xs[i] + 1e-9) {
        var t = xs[i] === xs[i - 1] ? 1 : (x - xs[i - 1]) / (xs[i] - xs[i - 1]);
        return ys[i - 1] + t * (ys[i] - ys[i - 1]);
      }
    }
    return ys[ys.length - 1];
  }

  // ---- one card ----------------------------------------------------------------------
  function tokenSpan(c, i) {
    var t = h("span", "tok", c.tokens[i]);
    var v = c.influence ? c.influence[i] : null;
    if (v === null || v === undefined) {
      t.classList.add("none");
      t.title = "not analysed";
    } else {
      var k = Math.max(0, Math.min(palette.length - 1, Math.round(v * (palette.length - 1))));
      t.style.background = palette[k];
      if (k >= palette.length - 2) t.style.color = "#fff";
      t.title = "perceptual influence " + fmt(v) + (v < 0.5 ? " (leans on the language prior)" : " (leans on the image)");
    }
    if (i >= c.tokenIndex && i < c.tokenEnd) {
      t.classList.add("hall");
      t.title = (c.tokenEnd - c.tokenIndex > 1 ? "hallucinated span; " : "hallucinated token; ") + t.title;
    }
    return t;
  }
  function figure(src, alt, caption) {
    var f = h("figure");
    if (src) {
      var img = h("img");
      img.setAttribute("alt", alt);
      img.setAttribute("decoding", "async");
      img.src = src;
      f.appendChild(img);
    } else {
      var ph = h("div", "noimg", "not available");
      ph.setAttribute("role", "img");
      ph.setAttribute("aria-label", alt + " (not available)");
      f.appendChild(ph);
    }
    f.appendChild(h("figcaption", null, caption));
    return f;
  }
  function card(c) {
    var art = h("article", "card");
    art.setAttribute("data-sample", c.sample);
    var head = h("header");
    head.appendChild(h("span", "chip kind", c.kind.replace(/_/g, " ")));
    if (c.cls) head.appendChild(h("span", "chip", c.cls));
    head.appendChild(h("span", "chip", c.split || "captions"));
    head.appendChild(h("span", "chip", c.labelSet));
    head.appendChild(h("span", "sid", c.sample));
    art.appendChild(head);
    art.appendChild(h("div", "q", (c.benchmark === "captions" ? "Prompt: " : "Q: ") + c.question));
    var ans = h("div", "answer");
    ans.appendChild(h("span", "sr", "Answer: "));
    if (c.tokens && c.tokens.length) {
      for (var i = 0; i < c.tokens.length; i++) ans.appendChild(tokenSpan(c, i));
    } else {
      ans.appendChild(document.createTextNode(c.answer === null ? "(no answer)" : c.answer));
    }
    art.appendChild(ans);
    var tok = c.tokenText === null ? "" : c.tokenText.trim();
    var figs = h("div", "figs");
    figs.appendChild(figure(c.image ? pics[c.image] : null, "Image " + c.imageName, c.imageName));
    figs.appendChild(figure(c.heatmap,
      "EAGLE " + c.view + " heatmap for the token \u201c" + tok + "\u201d: red regions drive it",
      "EAGLE " + c.view + (c.view === "map" ? " (drives the token)" : " (drives the hallucination)")));
    art.appendChild(figs);
    var curves = h("div", "curves");
    var auc = "ins AUC " + fmt(c.insertionAuc, 2) + " · del AUC " + fmt(c.deletionAuc, 2);
    curves.appendChild(chart(auc,
      "Insertion and deletion curves of the explained token: " + auc,
      [{ x: c.areas, y: c.insertion, color: "#1f6db3" }, { x: c.areas, y: c.deletion, color: "#e66101", dash: true }],
      null, "image share"));
    if (c.correction) {
      var point = null, text, series = [], marks = null;
      if (c.correction.p) series.push({ x: c.correction.x, y: c.correction.p, color: "#2b8a3e" });
      if (c.correction.scan) marks = c.correction.scan;
      if (c.corrected && c.correctionArea !== null) {
        var y = c.correction.p ? interp(c.correction.x, c.correction.p, c.correctionArea) : 1;
        point = { x: c.correctionArea, y: y, text: pct(c.correctionArea),
          label: "answer corrected after removing " + pct(c.correctionArea) + " of the image" };
        text = "corrected at " + pct(c.correctionArea) + " removed";
      } else {
        text = "not corrected";
      }
      curves.appendChild(chart("p(correct answer)", "Correction scan: probability of the correct answer as the " +
        "lowest-ranked regions are removed, and whether each regenerated answer was right; " + text,
        series, point, "share removed", marks));
    } else {
      var none = h("div", "empty small", "no correction scan");
      curves.appendChild(none);
    }
    art.appendChild(curves);
    var facts = h("dl", "facts");
    function fact(k, v) { facts.appendChild(h("dt", null, k)); facts.appendChild(h("dd", null, v)); }
    if (c.label !== null && c.label !== undefined) fact(c.benchmark === "captions" ? "Present" : "Label", (c.label || "none") + " (" + c.labelSet + ")");
    if (c.counter) fact("Explained", "counter token \u201c" + c.counter.trim() + "\u201d");
    else if (c.view === "1 − map") fact("Explained", "absence of \u201c" + c.tokens.slice(c.tokenIndex, c.tokenEnd).join("").trim() + "\u201d");
    if (c.correctedAnswer !== null && c.correctedAnswer !== undefined) fact("Corrected answer", c.correctedAnswer);
    fact("Correction area", c.correctionArea === null ? "no scan" : (c.corrected ? pct(c.correctionArea) : "not corrected"));
    if (c.logprob !== null) fact("Token confidence", fmt(Math.exp(c.logprob), 2));
    fact("Method", c.method);
    art.appendChild(facts);
    return art;
  }

  // ---- filtering, sorting, pages ------------------------------------------------------
  var state = { page: 0 };
  var controls = { cls: "f-class", split: "f-split", kind: "f-kind", labels: "f-labels", area: "f-area", sort: "f-sort" };
  function value(name) { var e = document.getElementById(controls[name]); return e ? e.value : ""; }
  function bucket(c) {
    if (c.correctionArea === null) return "na";
    if (!c.corrected) return "none";
    return c.correctionArea <= 0.1 + 1e-12 ? "le10" : (c.correctionArea <= 0.5 ? "10to50" : "gt50");
  }
  function num(v, dflt) { return v === null || v === undefined ? dflt : v; }
  var KIND = { false_positive: 0, hallucinated_object: 1, false_negative: 2 };
  var sorters = {
    "kind": function (a, b) { return num(KIND[a.kind], 3) - num(KIND[b.kind], 3) || num(a.correctionArea, 2) - num(b.correctionArea, 2); },
    "area-asc": function (a, b) { return num(a.correctionArea, 2) - num(b.correctionArea, 2); },
    "area-desc": function (a, b) { return num(b.correctionArea, -1) - num(a.correctionArea, -1); },
    "class": function (a, b) { return String(a.cls || "").localeCompare(String(b.cls || "")); },
    "split": function (a, b) { return String(a.split || "~").localeCompare(String(b.split || "~")); },
    "ins-desc": function (a, b) { return num(b.insertionAuc, -1) - num(a.insertionAuc, -1); },
    "conf-desc": function (a, b) { return num(b.logprob, -1e9) - num(a.logprob, -1e9); },
    "sample": function (a, b) { return a.id - b.id; }
  };
  function selection() {
    var cls = value("cls"), split = value("split"), kind = value("kind"), labels = value("labels"), area = value("area");
    var out = cards.filter(function (c) {
      return (!cls || c.cls === cls) && (!split || (c.split || "captions") === split) && (!kind || c.kind === kind) &&
        (!labels || c.labelSet === labels) && (!area || bucket(c) === area);
    });
    var by = sorters[value("sort")] || sorters["kind"];
    return out.sort(function (a, b) { return by(a, b) || a.id - b.id; });
  }
  function pager(el, total, pages) {
    if (!el) return;
    while (el.firstChild) el.removeChild(el.firstChild);
    function btn(label, page, disabled) {
      var b = h("button", null, label);
      b.type = "button";
      b.disabled = disabled;
      b.addEventListener("click", function () { state.page = page; render(); document.getElementById("h-cards").scrollIntoView(); });
      el.appendChild(b);
    }
    btn("« First", 0, state.page === 0);
    btn("‹ Prev", state.page - 1, state.page === 0);
    var start = total ? state.page * pageSize + 1 : 0, end = Math.min(total, (state.page + 1) * pageSize);
    el.appendChild(h("span", "status small", "Page " + (total ? state.page + 1 : 0) + " of " + pages + " · cards " +
      start + "–" + end + " of " + total + (total < cards.length ? " (filtered from " + cards.length + ")" : "")));
    btn("Next ›", state.page + 1, state.page >= pages - 1);
    btn("Last »", pages - 1, state.page >= pages - 1);
  }
  function render() {
    var box = document.getElementById("cards");
    if (!box) return;
    var sel = selection();
    var pages = Math.max(1, Math.ceil(sel.length / pageSize));
    state.page = Math.max(0, Math.min(state.page, pages - 1));
    var frag = document.createDocumentFragment();
    sel.slice(state.page * pageSize, (state.page + 1) * pageSize).forEach(function (c) { frag.appendChild(card(c)); });
    if (!sel.length) frag.appendChild(h("p", "empty", "No cards match these filters."));
    while (box.firstChild) box.removeChild(box.firstChild);
    box.appendChild(frag);
    pager(document.getElementById("pager-top"), sel.length, pages);
    pager(document.getElementById("pager-bottom"), sel.length, pages);
    document.body.setAttribute("data-cards-rendered", String(box.children.length));
  }
  Object.keys(controls).forEach(function (k) {
    var e = document.getElementById(controls[k]);
    if (e) e.addEventListener("change", function () { state.page = 0; render(); });
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-filter-class]"), function (b) {
    b.addEventListener("click", function () {
      var sel = document.getElementById("f-class");
      if (!sel) return;
      sel.value = b.getAttribute("data-filter-class");
      if (sel.value !== b.getAttribute("data-filter-class")) sel.value = "";  // class without cards
      state.page = 0;
      render();
      document.getElementById("hallucinations").scrollIntoView();
    });
  });
  var form = document.getElementById("card-controls");
  if (form) form.addEventListener("submit", function (e) { e.preventDefault(); });
  render();
})();
{% endraw %}
