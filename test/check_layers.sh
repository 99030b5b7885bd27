#!/usr/bin/env bash
#
# test/check_layers.sh - no source file includes the header of a module of
# its own layer or above (the layer table is in src/README.md).
#
# Prints one line per offending include and "N passed, N failed" (files);
# exit status 1 when anything is wrong, 2 when the table is unreadable.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

declare -A layer
while IFS= read -r line; do
	if [[ $line =~ ^\|\ ([0-9]+)\ \|\ (.*)\ \|$ ]]; then
		n=${BASH_REMATCH[1]}
		IFS=', ' read -r -a mods <<<"${BASH_REMATCH[2]}"
		for m in "${mods[@]}"; do
			[[ -n $m ]] && layer[$m]=$n
		done
	fi
done <src/README.md
if [[ ${#layer[@]} -eq 0 ]]; then
	echo "no layer table in src/README.md" >&2
	exit 2
fi

passed=0
failed=0
for f in src/*.c src/*.h; do
	mod=$(basename "$f")
	mod=${mod%.*}
	if [[ -z ${layer[$mod]:-} ]]; then
		echo "$f: module $mod is not in the layer table of src/README.md"
		failed=$((failed + 1))
		continue
	fi
	ok=1
	while IFS= read -r inc; do
		dep=${inc%.h}
		[[ $dep == "$mod" ]] && continue
		# only the project's own headers count
		[[ -f src/$inc ]] || continue
		if [[ -z ${layer[$dep]:-} ]]; then
			echo "$f: includes $inc, whose module is not in the layer table"
			ok=0
		elif ((layer[$dep] >= layer[$mod])); then
			echo "$f (layer ${layer[$mod]}): includes $inc (layer ${layer[$dep]})"
			ok=0
		fi
	done < <(sed -n 's/^#include "\([a-z_]*\.h\)".*/\1/p' "$f")
	if ((ok)); then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
((failed == 0))
