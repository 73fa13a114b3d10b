// Applied before first paint so a light-theme user never sees a dark flash. Theme is the only
// thing the dashboard keeps in localStorage.
(function () {
  try {
    var theme = localStorage.getItem("etcdmonitor-theme");
    document.documentElement.setAttribute("data-theme", theme === "light" ? "light" : "dark");
  } catch (e) {
    document.documentElement.setAttribute("data-theme", "dark");
  }
})();
