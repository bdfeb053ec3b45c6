"""Package discovery for the customer-fixed layout.

The import package ``otsentry`` is spread over four top-level folders
(``agent/``, ``collector/``, ``common/`` and the generated ``protos/otsentry/v1``);
setuptools cannot discover that layout from pyproject.toml alone, so the package
list is computed here by walking the folders.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {
    "otsentry.agent": "agent",
    "otsentry.collector": "collector",
    "otsentry.common": "common",
    "otsentry.v1": "protos/otsentry/v1",
}


def _packages() -> tuple[list[str], dict[str, str]]:
    here = Path(__file__).parent
    packages, package_dir = ["otsentry"], {"otsentry": "protos/otsentry"}
    for name, folder in ROOTS.items():
        for init in sorted((here / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(here / folder)
            sub = ".".join((name, *rel.parts)) if rel.parts else name
            packages.append(sub)
            package_dir[sub] = str(Path(folder, *rel.parts))
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"": ["*.proto", "*.toml", "*.json", "*.csv", "*.html", "*.css", "*.js", "py.typed"]},
    include_package_data=True,
)
