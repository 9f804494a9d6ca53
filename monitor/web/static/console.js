// Live countdowns: each <time data-due> shows time left (or overdue), coloured by how close.
(function () {
  function delta(seconds) {
    var s = Math.abs(Math.round(seconds));
    if (s < 60) return s + "秒";
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + "天" + (h ? h + "小时" : "");
    if (h) return h + "小时" + (m ? m + "分" : "");
    return m + "分" + (s % 60) + "秒";  // the last hour counts in seconds
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-due]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-due")) - now) / 1000;
      el.textContent = left > 0 ? "剩余 " + delta(left) : "已超时 " + delta(left);
      el.className = el.className.replace(/\b(ok|warn|urgent|late)\b/g, "").trim() + " " +
        (left <= 0 ? "late" : left < 3600 ? "urgent" : left < 6 * 3600 ? "warn" : "ok");
    });
  }
  tick();
  setInterval(tick, 1000);
})();
