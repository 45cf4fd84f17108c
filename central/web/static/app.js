// WildWatch console: keyboard shortcuts on the review queue, and the queue's reaction to
// decisions (htmx events). Works without this file: every action is also a plain form or link.
(function () {
  "use strict";
  function items() { return Array.from(document.querySelectorAll(".queue .item")); }
  function current() { return document.querySelector(".queue .item.current"); }
  function select(el) {
    items().forEach(function (i) { i.classList.remove("current"); });
    if (el) { el.classList.add("current"); el.scrollIntoView({ block: "nearest" }); }
  }
  function move(step) {
    var list = items(); if (!list.length) return;
    var i = list.indexOf(current());
    select(list[Math.max(0, Math.min(list.length - 1, i + step))] || list[0]);
  }
  function open(el) { var a = el && el.querySelector("a.open"); if (a) a.click(); }
  function decide(kind) {
    var b = document.querySelector("#detail button." + kind);
    if (!b) return;
    var reason = b.form && b.form.querySelector("select[name=reason]");
    // a dismissal needs a reason: the key brings the list up instead of guessing one
    if (kind === "dismiss" && reason && !reason.value) { reason.focus(); return; }
    b.click();
  }
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    // keys belong to the focused control (a button's Enter, a field's letters)
    if (t && /^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(t.tagName)) return;
    if (!document.querySelector(".queue")) return;
    switch (ev.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o": case "Enter": if (!current()) return; open(current()); break;
      case "x": { var c = current(); if (c) { var box = c.querySelector("input[type=checkbox]"); box.checked = !box.checked; } break; }
      case "c": decide("confirm"); break;
      case "d": decide("dismiss"); break;
      default: return;
    }
    ev.preventDefault();
  });
  document.addEventListener("click", function (ev) {
    var item = ev.target.closest && ev.target.closest(".queue .item");
    if (item) { select(item); item.classList.add("opened"); }
  });
  // a decision made on the detail panel: drop the item from the queue, open the next one
  document.body.addEventListener("decided", function (ev) {
    var id = ev.detail && ev.detail.value;
    var el = id && document.getElementById("item-" + id);
    if (el) {
      var next = el.nextElementSibling;
      el.remove();
      var detail = document.getElementById("detail");
      if (next) { select(next); open(next); }
      else if (detail) { detail.innerHTML = '<p class="hint">已处理 Done. 点击下一条 Tap the next item.</p>'; }
    } else if (document.getElementById("event")) {
      window.location.reload();
    }
  });
  document.body.addEventListener("bulkDone", function () {
    setTimeout(function () { window.location.reload(); }, 800);
  });
  // on a phone the detail sits under the list: bring it into view once it has loaded
  document.body.addEventListener("htmx:afterSwap", function (ev) {
    if (ev.detail.target && ev.detail.target.id === "detail" && window.innerWidth < 900) {
      ev.detail.target.scrollIntoView({ block: "start" });
    }
  });
  // a dismissal without a reason: point at the list instead of sending it
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("button[value=dismissed]");
    var reason = b && b.form && b.form.querySelector("select[name=reason]");
    if (reason && !reason.value) { ev.preventDefault(); ev.stopPropagation(); reason.focus(); }
  }, true);
  // htmx shows server refusals (409, 422, 503) instead of failing silently
  document.body.addEventListener("htmx:responseError", function (ev) {
    var text = ev.detail.xhr.responseText;
    try { text = JSON.parse(text).detail; } catch (e) { /* plain text */ }
    window.alert(text || ("错误 error " + ev.detail.xhr.status));
  });
})();
