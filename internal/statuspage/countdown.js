(function () {
  "use strict";
  // Counts each monitoring window down from the time the server rendered,
  // measured on this page's own clock (immune to a skewed client clock).
  var start = performance.now();
  var els = document.querySelectorAll("[data-left-ms]");
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function fmt(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000)), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    s %= 60;
    if (h > 0) return h + "h " + pad(m) + "m " + pad(s) + "s";
    if (m > 0) return m + "m " + pad(s) + "s";
    return s + "s";
  }
  function tick() {
    var gone = performance.now() - start;
    els.forEach(function (el) {
      var left = Number(el.dataset.leftMs) - gone, win = Number(el.dataset.windowMs);
      var t = el.querySelector(".left");
      if (t) t.textContent = fmt(left);
      var f = el.querySelector(".fill");
      if (f && win > 0) f.style.width = Math.min(100, Math.max(0, 100 * (1 - left / win))).toFixed(1) + "%";
    });
  }
  if (els.length) { tick(); setInterval(tick, 1000); }
})();
