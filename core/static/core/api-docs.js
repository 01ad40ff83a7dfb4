// Starts Swagger UI or ReDoc on the API docs pages (core/apidocs.py). A file of our own rather
// than an inline script, so the pages need no exception in the Content-Security-Policy.
(function () {
  "use strict";
  var element = document.querySelector("[data-api-docs]");
  if (!element) return;
  var url = element.getAttribute("data-schema-url");
  if (element.getAttribute("data-api-docs") === "swagger") {
    window.SwaggerUIBundle({
      url: url,
      dom_id: "#swagger-ui",
      presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      persistAuthorization: false,
    });
  } else {
    // search runs in a blob: worker, which the policy does not allow; the page works without it
    window.Redoc.init(url, { disableSearch: true, hideDownloadButton: false }, element);
  }
})();
