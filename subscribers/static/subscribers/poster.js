// Print button of the A4 poster page (inline handlers are not allowed by our CSP).
(function () {
  "use strict";
  const button = document.getElementById("print-poster");
  if (button) button.addEventListener("click", () => window.print());
})();
