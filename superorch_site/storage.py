"""Static files storage for production: hashed names, with ES module imports rewritten.

The chat client is native ES modules (static/superorch/chat/main.js imports its siblings
with relative paths). ManifestStaticFilesStorage hashes every file's name; with
`support_js_module_import_aggregation` it also rewrites `import ... from "./x.js";` (and
`export ... from`) to the hashed names, so a changed module changes the name of every
module that imports it, and a browser never mixes old and new modules.

Django applies that rewrite to every *.js file it collects, and some apps' files cannot
take it (django_htmx's ext/hx-sse-2.js imports "../htmx", a name without .js, and
collectstatic fails). So it is applied to our modules only, with Django's own patterns.

Use as STORAGES["staticfiles"]["BACKEND"] = "superorch_site.storage.ModuleManifestStaticFilesStorage".
"""

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

# The files whose imports are rewritten (fnmatch on the path under STATIC_ROOT).
MODULE_FILES = "superorch/chat/*.js"


class ModuleManifestStaticFilesStorage(ManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
    _js_module_import_aggregation_patterns = (
        MODULE_FILES,
        ManifestStaticFilesStorage._js_module_import_aggregation_patterns[1],
    )
