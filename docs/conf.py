# Sphinx configuration of the tutorial's website: the notebooks as stored (never re-executed),
# the README as the landing page, and the Figure 4 page whose decoder runs in the browser.
# Build it with `python docs/build_site.py` (it stages README, notebooks and images beside this file).
project = "Capsule Networks, rebuilt step by step"
author = "the capsnet_lib authors"
copyright = "2026, the capsnet_lib authors (MIT licence)"
extensions = ["myst_nb"]
nb_execution_mode = "off"                       # show the stored outputs, as GitHub does
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "build", "**.ipynb_checkpoints", "README.md"]  # README.md: included by index.md
html_theme = "furo"
html_title = "Capsule Networks, rebuilt"
html_static_path = ["_static"]
html_show_sourcelink = False
suppress_warnings = ["mystnb.unknown_mime_type"]

# Nothing is fetched when a page is viewed: MathJax, its font and the widget manager are served from
# _static/vendor, copied there at build time from pinned npm packages (build_site.py, VENDORED).
mathjax_path = "vendor/mathjax/tex-mml-chtml.js"
mathjax4_config = {"loader": {"paths": {"fonts": "[mathjax]/../mathjax-fonts"}}}   # instead of a CDN
nb_ipywidgets_js = {"vendor/requirejs/require.js": {}, "vendor/@jupyter-widgets/html-manager/dist/embed-amd.js": {}}
