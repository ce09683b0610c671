"""collectstatic with superorch_site.storage: the chat's ES module imports point at hashed names."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import override_settings

BACKEND = "superorch_site.storage.ModuleManifestStaticFilesStorage"
CHAT = "superorch/chat/"
IMPORT = re.compile(r"""^import\b[^;]*?\bfrom\s*["']([^"']+)["']\s*;""", re.MULTILINE)


def _source_imports(name: str) -> list[str]:
    path = finders.find(name)
    assert path, f"{name} is not a static file"
    return IMPORT.findall(Path(path).read_text())


def test_collectstatic_rewrites_module_imports_to_hashed_names(tmp_path):
    root = tmp_path / "static"
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": BACKEND},
    }
    with override_settings(STATIC_ROOT=root, STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)

    paths = json.loads((root / "staticfiles.json").read_text())["paths"]
    main = root / paths[CHAT + "main.js"]
    assert main.name != "main.js" and re.fullmatch(r"main\.[0-9a-f]{12}\.js", main.name)
    source = _source_imports(CHAT + "main.js")
    # composer, connection, dom, state, storage, theme, view, widget-bridge
    assert len(source) >= 6, source

    rewritten = IMPORT.findall(main.read_text())
    assert len(rewritten) == len(source)
    for original, hashed in zip(source, rewritten, strict=True):
        assert original.startswith("./") and original.endswith(".js")
        name = CHAT + original[2:]
        assert hashed == "./" + Path(paths[name]).name, (original, hashed)
        assert (root / paths[name]).is_file()

    # Modules imported by modules are rewritten too (view.js imports dom, i18n, markdown, state).
    view = (root / paths[CHAT + "view.js"]).read_text()
    assert all(
        re.fullmatch(r"\./[a-z0-9-]+\.[0-9a-f]{12}\.js", url) for url in IMPORT.findall(view)
    )
