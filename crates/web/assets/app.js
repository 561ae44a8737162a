// Cartwright dashboard: the few live parts. Every page works without this file; with it,
// selections preview as they are typed, batch pages update live and orders open in a drawer.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function debounce(fn, ms) {
    var t;
    return function () { clearTimeout(t); t = setTimeout(fn, ms); };
  }

  // Forms that ask before they act.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });

  // A file input fills a text area (CSV import).
  document.querySelectorAll("input[type=file][data-fill]").forEach(function (input) {
    input.addEventListener("change", function () {
      var target = document.getElementById(input.getAttribute("data-fill"));
      var file = input.files && input.files[0];
      if (!target || !file) { return; }
      var reader = new FileReader();
      reader.onload = function () { target.value = reader.result; };
      reader.readAsText(file);
    });
  });

  // Live preview of who a selection covers.
  function wirePreview(form, box) {
    var seq = 0;
    var link = form.querySelector("[data-range-link]");
    var runNow = function () {
      var data = new URLSearchParams(new FormData(form));
      var mine = ++seq;
      box.setAttribute("aria-busy", "true");
      fetch("/accounts/preview", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", "x-csrf-token": csrf },
        body: data.toString(),
        credentials: "same-origin"
      }).then(function (r) { return r.text(); }).then(function (html) {
        if (mine === seq) { box.innerHTML = html; box.removeAttribute("aria-busy"); }
      }).catch(function () { box.removeAttribute("aria-busy"); });
      if (link) {
        var q = new URLSearchParams();
        ["storefront_id", "from", "to"].forEach(function (k) { if (data.get(k)) { q.set(k, data.get(k)); } });
        link.href = "/batches/new?" + q.toString();
      }
    };
    var run = debounce(runNow, 250);
    form.addEventListener("input", function (e) {
      var name = e.target && e.target.name;
      if (["storefront_id", "select_by", "from", "to", "tag", "ids"].indexOf(name) >= 0) { run(); }
    });
    form.addEventListener("change", function (e) {
      if (e.target && (e.target.name === "select_by" || e.target.name === "storefront_id")) { run(); }
    });
    runNow();
  }
  document.querySelectorAll("form[data-preview]").forEach(function (form) {
    var box = document.getElementById(form.getAttribute("data-preview"));
    if (box) { wirePreview(form, box); }
  });
  var batchForm = document.getElementById("batch-form");
  if (batchForm && document.getElementById("batch-preview")) {
    wirePreview(batchForm, document.getElementById("batch-preview"));
  }

  // More cart lines.
  var addLineButton = document.querySelector("[data-add-line]");
  if (addLineButton) {
    addLineButton.addEventListener("click", function () {
      var lines = document.getElementById("lines");
      var all = lines.querySelectorAll("[data-line]");
      var last = all[all.length - 1];
      var n = all.length;
      var copy = last.cloneNode(true);
      copy.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
      copy.querySelectorAll("select, input").forEach(function (el) {
        var kind = el.tagName === "SELECT" ? "product" : "qty";
        el.id = "line-" + kind + "-" + n;
        el.removeAttribute("aria-invalid");
        el.removeAttribute("aria-describedby");
        el.value = kind === "qty" ? "1" : "";
      });
      copy.querySelectorAll("label").forEach(function (label) {
        var kind = label.getAttribute("for").indexOf("product") >= 0 ? "product" : "qty";
        label.setAttribute("for", "line-" + kind + "-" + n);
        if (kind === "product") { label.textContent = "Product " + (n + 1); }
      });
      lines.appendChild(copy);
      copy.querySelector("select").focus();
    });
  }

  // The order drawer.
  var drawer = document.getElementById("drawer");
  var backdrop = document.getElementById("drawer-backdrop");
  var opener = null;
  function closeDrawer() {
    if (!drawer || drawer.hidden) { return; }
    drawer.hidden = true; backdrop.hidden = true;
    if (opener) { opener.focus(); }
  }
  function openOrder(id, from) {
    opener = from;
    var body = document.getElementById("drawer-body");
    document.getElementById("drawer-title").textContent = "Order #" + id;
    body.innerHTML = '<p class="muted">Loading…</p>';
    drawer.hidden = false; backdrop.hidden = false;
    document.getElementById("drawer-close").focus();
    fetch("/orders/" + id + "?drawer=true", { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { body.innerHTML = html; });
  }
  if (drawer) {
    document.getElementById("drawer-close").addEventListener("click", closeDrawer);
    backdrop.addEventListener("click", closeDrawer);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") { closeDrawer(); } });
    document.addEventListener("click", function (e) {
      var a = e.target.closest && e.target.closest("a[data-drawer], [data-order-ref]");
      if (!a || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
      e.preventDefault();
      var id = a.getAttribute("data-order-ref") || a.getAttribute("href").split("/").pop();
      openOrder(id, a);
    });
  }

  // A rewards run's page: figures and results, live.
  var run = document.getElementById("run-live");
  if (run) {
    var runId = run.getAttribute("data-run");
    var setRunText = function (id, value) {
      var el = document.getElementById(id);
      if (el && el.textContent !== String(value)) { el.textContent = value; }
    };
    var refreshRun = debounce(function () {
      fetch("/rewards/runs/" + runId + "/live", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          Object.keys(data.counts).forEach(function (k) { setRunText("count-" + k, data.counts[k]); });
          setRunText("run-points", data.points);
          setRunText("run-duration", data.duration);
          var bar = document.getElementById("progress");
          bar.setAttribute("aria-valuenow", data.progress);
          bar.firstElementChild.style.width = data.progress + "%";
          var badge = document.getElementById("run-state");
          badge.textContent = data.state; badge.className = "badge state-" + data.state;
          run.setAttribute("data-state", data.state);
          var results = document.getElementById("run-results");
          if (results.innerHTML !== data.results) { results.innerHTML = data.results; }
          var cancel = document.getElementById("cancel");
          if (cancel && data.state !== "running") { cancel.closest("form").hidden = true; }
        });
    }, 300);
    var runEvents = new EventSource("/api/v1/rewards/runs/" + runId + "/events");
    runEvents.addEventListener("event", refreshRun);
    // The run is over: the server closes the stream; do not reconnect.
    runEvents.addEventListener("end", function () { runEvents.close(); refreshRun(); });
    refreshRun();
    return;
  }

  // The batch page: progress, rows and log, live.
  var live = document.getElementById("batch-live");
  if (!live) { return; }
  var batch = live.getAttribute("data-batch");
  var log = document.getElementById("log");
  var logEmpty = document.getElementById("log-empty");
  var level = document.getElementById("log-level");
  var search = document.getElementById("log-search");
  var status = document.getElementById("live-status");
  var ranks = { debug: 0, info: 1, warn: 2, error: 3 };
  var MAX_LINES = 3000;

  function visible(li) {
    var wanted = ranks[level.value] || 0;
    var text = search.value.trim().toLowerCase();
    return Number(li.getAttribute("data-rank")) >= wanted &&
      (!text || li.textContent.toLowerCase().indexOf(text) >= 0);
  }
  function refilter() {
    var shown = 0;
    log.querySelectorAll("li").forEach(function (li) { li.hidden = !visible(li); if (!li.hidden) { shown++; } });
    logEmpty.hidden = shown > 0;
  }
  level.addEventListener("change", refilter);
  search.addEventListener("input", debounce(refilter, 150));

  function timeOf(at) {
    var d = new Date(at);
    return isNaN(d) ? "" : d.toISOString().substring(11, 19);
  }
  function appendLog(ev) {
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 30;
    var li = document.createElement("li");
    li.className = "level-" + ev.level;
    li.setAttribute("data-rank", ranks[ev.level] || 0);
    var t = document.createElement("span"); t.textContent = timeOf(ev.at);
    var l = document.createElement("span"); l.className = "lvl"; l.textContent = ev.level;
    var m = document.createElement("span");
    if (ev.order_id) {
      var ref = document.createElement("a");
      ref.href = "/orders/" + ev.order_id; ref.className = "order-ref";
      ref.setAttribute("data-order-ref", ev.order_id);
      ref.textContent = "#" + ev.order_id;
      m.appendChild(ref); m.appendChild(document.createTextNode(" "));
    }
    m.appendChild(document.createTextNode((ev.phase ? ev.phase + ": " : "") + ev.message));
    li.appendChild(t); li.appendChild(l); li.appendChild(m);
    li.hidden = !visible(li);
    log.appendChild(li);
    if (!li.hidden) { logEmpty.hidden = true; }
    while (log.childElementCount > MAX_LINES) { log.removeChild(log.firstElementChild); }
    if (atBottom) { log.scrollTop = log.scrollHeight; }
  }

  function setText(id, value) {
    var el = document.getElementById(id);
    if (el && el.textContent !== String(value)) { el.textContent = value; }
  }
  var refresh = debounce(function () {
    fetch("/batches/" + batch + "/rows", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        Object.keys(data.counts).forEach(function (k) { setText("count-" + k, data.counts[k]); });
        var bar = document.getElementById("progress");
        bar.setAttribute("aria-valuenow", data.progress);
        bar.firstElementChild.style.width = data.progress + "%";
        setText("batch-summary", data.summary);
        var badge = document.getElementById("batch-state");
        badge.textContent = data.state; badge.className = "badge state-" + data.state;
        live.setAttribute("data-state", data.state);
        if (data.state === "finished" || data.state === "stopped") {
          var stop = document.getElementById("stop");
          if (stop) { stop.closest("form").hidden = true; }
        }
        data.orders.forEach(function (o) {
          var row = document.querySelector('tr[data-order="' + o.id + '"]');
          if (!row) { return; }
          var state = row.querySelector('[data-field="state"]');
          if (state.textContent !== o.state) { state.textContent = o.state; state.className = "badge state-" + o.state; }
          var total = row.querySelector('[data-field="total"]');
          if (total.textContent !== o.total) { total.textContent = o.total; }
          var detail = row.querySelector('[data-field="detail"]');
          var text = o.number || o.error;
          if (detail.textContent !== text) {
            detail.textContent = "";
            var span = document.createElement("span");
            span.className = o.number ? "mono" : "muted";
            span.textContent = text;
            detail.appendChild(span);
          }
        });
      });
  }, 300);

  var source = new EventSource("/api/v1/batches/" + batch + "/events");
  source.onopen = function () { status.textContent = "live"; status.classList.add("on"); };
  source.onerror = function () { status.textContent = "reconnecting…"; status.classList.remove("on"); };
  source.addEventListener("event", function (e) {
    try { appendLog(JSON.parse(e.data)); } catch (err) { return; }
    refresh();
  });
  // The batch is over: the server closes the stream; do not reconnect.
  source.addEventListener("end", function () {
    source.close();
    status.textContent = "finished"; status.classList.remove("on");
    refresh();
  });
  refresh();
})();
