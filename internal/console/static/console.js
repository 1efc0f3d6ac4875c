// The allow-list page's live check: asks the server (the allow-list's own
// matcher) whether the typed endpoint would be admitted, and shows why not.
// Everything shown is set with textContent, never parsed as HTML.
"use strict";
(function () {
  var input = document.querySelector("input[data-live-check]");
  var out = document.getElementById("verdict");
  if (!input || !out) return;
  var url = input.getAttribute("data-live-check");
  var timer = null, seq = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function show(v) {
    out.replaceChildren();
    var p;
    if (v.invalid) {
      p = el("p", "refused", "Refused before any entry is tried: " + v.invalid);
    } else if (v.allowed) {
      p = el("p", "admitted", "Admitted as " + v.endpoint + " by " + v.match + (v.allow_private_network ? " (private addresses allowed)." : "."));
    } else {
      p = el("p", "refused", "Not admitted: " + v.endpoint + " matches no entry.");
    }
    out.appendChild(p);
    if (v.misses && v.misses.length) {
      var ul = el("ul", "misses");
      v.misses.forEach(function (m) { ul.appendChild(el("li", "", m.prefix + ": " + m.reason)); });
      out.appendChild(ul);
    }
  }

  function check() {
    var value = input.value.trim();
    var mine = ++seq;
    if (!value) { out.replaceChildren(); return; }
    fetch(url + "?url=" + encodeURIComponent(value), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("session");
        return r.json();
      })
      .then(function (v) { if (mine === seq) show(v); })
      .catch(function () { if (mine === seq) { out.replaceChildren(el("p", "refused", "The check failed; sign in again if your session ended.")); } });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 200);
  });
  if (input.value.trim()) check();
})();
