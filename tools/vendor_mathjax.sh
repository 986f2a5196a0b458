#!/usr/bin/env bash
# Vendor MathJax 3 into book/_static/mathjax/ so that the built book renders equations offline.
#
#   bash tools/vendor_mathjax.sh            # MathJax 3.2.2 (the pinned version)
#   MATHJAX_VERSION=3.2.2 bash tools/vendor_mathjax.sh
#
# Fetches the npm package with `npm pack` (the npm registry, no CDN) and keeps only what the
# book needs (well under 3 MB):
#   tex-chtml-full.js                  TeX input (all TeX extensions built in, so nothing is
#                                      autoloaded at view time) + CommonHTML output + menu
#   output/chtml/fonts/woff-v2/*.woff  the MathJax TeX fonts, found relative to the script
#   LICENSE                            Apache-2.0
# The files are committed; rerun this script only to change the MathJax version.
set -euo pipefail

VERSION="${MATHJAX_VERSION:-3.2.2}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$HERE/book/_static/mathjax"

command -v npm >/dev/null 2>&1 || { echo "vendor_mathjax: npm is needed (apt-get install npm)" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
( cd "$TMP" && npm pack --silent "mathjax@${VERSION}" >/dev/null )
tar -xzf "$TMP/mathjax-${VERSION}.tgz" -C "$TMP"
PKG="$TMP/package"
GOT="$(node -p "require('$PKG/package.json').version" 2>/dev/null || echo "$VERSION")"

rm -rf "$DEST"
mkdir -p "$DEST/output/chtml/fonts/woff-v2"
cp "$PKG/es5/tex-chtml-full.js" "$DEST/"
cp "$PKG/es5/output/chtml/fonts/woff-v2/"*.woff "$DEST/output/chtml/fonts/woff-v2/"
cp "$PKG/LICENSE" "$DEST/LICENSE"

cat > "$DEST/README.md" <<README
# Vendored MathJax ${GOT}

MathJax ${GOT} (Apache License 2.0, see \`LICENSE\`), served from the built book so that
equations render without a network (Sphinx would otherwise load MathJax from a CDN).

Fetched from the npm registry by \`tools/vendor_mathjax.sh\`:

    npm pack mathjax@${GOT}

and reduced to:

- \`tex-chtml-full.js\`: the \`es5/tex-chtml-full.js\` component (TeX input with every TeX
  extension built in, CommonHTML output, menu); nothing is loaded lazily at view time.
- \`output/chtml/fonts/woff-v2/\`: the MathJax TeX web fonts; MathJax finds them relative to
  the script's own URL (\`[mathjax]/output/chtml/fonts/woff-v2\`).
- \`LICENSE\`.

\`book/_config.yml\` points Sphinx at it with \`sphinx.config.mathjax_path: mathjax/tex-chtml-full.js\`
(relative paths are taken inside \`_static/\`). To change version:
\`MATHJAX_VERSION=3.x.y bash tools/vendor_mathjax.sh\`, then rebuild the book and run the browser check.
README

du -sh "$DEST" | awk -v v="$GOT" '{print "vendor_mathjax: MathJax " v " -> book/_static/mathjax (" $1 ")"}'
