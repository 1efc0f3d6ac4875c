#!/usr/bin/env bash
# Fetches the FHIR R4 specification package (hl7.fhir.r4.examples@4.0.1) from the
# npm registry and unpacks it; prints the directory holding the resources.
set -euo pipefail
dir=${1:-"$(mktemp -d)"}
mkdir -p "$dir"
(cd "$dir" && npm pack --silent hl7.fhir.r4.examples@4.0.1 >/dev/null && tar xzf hl7.fhir.r4.examples-4.0.1.tgz)
echo "$dir/package"
