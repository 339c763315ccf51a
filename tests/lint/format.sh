#!/bin/bash
# Every C file in the tree is in the one style of .clang-format. Exit 0 clean, 1 not.
cd "$(dirname "$0")/../.." || exit 1
command -v clang-format >/dev/null || { echo "lint-format: clang-format missing"; exit 1; }
bad=$(git ls-files '*.c' '*.h' | while read -r f; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"
done)
[ -z "$bad" ] && exit 0
echo "lint-format: not in .clang-format's style (run: clang-format -i FILE):"
printf '  %s\n' $bad
exit 1
