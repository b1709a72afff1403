// Starts ReDoc on /redoc; a static file, so the page needs no inline script.
(function () {
  "use strict";
  var element = document.getElementById("redoc");
  Redoc.init(
    element.getAttribute("data-openapi-url"),
    { hideDownloadButton: false, disableSearch: true },
    element
  );
})();
