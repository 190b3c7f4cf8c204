#!/usr/bin/env bash
# The marketplace tour: a publisher node P, a marketplace node M and a buyer node B on three local ports.
#
# P's owner exports three memories as release weather/1.0.0 and publishes it on M. The buyer alice acquires a
# license on M for her key on B, checks it offline, and imports it into B, which meters it: the terms allow two
# searches. Then the owner revokes the license, B syncs M's log, and the cubes leave Search.
#
# Run from the repository after `make install`:  bash examples/marketplace-tour.sh
# P, M, B (host:port) and TOUR_DIR (default ./tour, wiped first) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMOS=${MEMOS:-.venv/bin/memos-grpc}
P=${P:-127.0.0.1:50061} M=${M:-127.0.0.1:50062} B=${B:-127.0.0.1:50063}
T=${TOUR_DIR:-tour}
rm -rf "$T" && mkdir -p "$T"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT

serve() {  # serve NAME HOST:PORT [SETTING=VALUE ...]: a server in the background, its log in $T/NAME.log
    local name=$1 listen=$2
    shift 2
    env "$@" "$MEMOS" serve --data-dir "$T/$name" --listen "$listen" >"$T/$name.log" 2>&1 &
    pids+=($!)
    "$MEMOS" health --server "$listen" --wait 180
}
on() {  # on HOST:PORT TOKEN_FILE COMMAND...: one memos-grpc command against a server, as a token's principal
    local server=$1 token=$2
    shift 2
    "$MEMOS" "$@" --server "$server" --token-file "$token"
}

echo "== P, the publisher's node, and M, the marketplace"
serve p "$P"
serve m "$M" MEMOS_MARKETPLACE_ENABLED=true MEMOS_MARKETPLACE_LOG_ORIGIN=tour.example/log
PA=$T/p/admin.token MA=$T/m/admin.token

echo "== the owner: a principal on P (with a key P keeps) and on M (with that key registered)"
on "$P" "$PA" principal create owner
on "$P" "$PA" credential create owner --token-out "$T/owner-p.token"
on "$P" "$PA" principal key create owner --public-out "$T/owner.pub"
on "$M" "$MA" principal create owner
on "$M" "$MA" credential create owner --token-out "$T/owner-m.token"
on "$M" "$MA" principal key add owner @"$T/owner.pub"

echo "== the owner exports a release on P and publishes it on M"
cat >"$T/terms.json" <<'TERMS'
{"license": "CC-BY-4.0", "maxOfflineSeconds": 86400,
 "permission": [{"action": "import"},
                {"action": "search", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 2}]}]}
TERMS
on "$P" "$T/owner-p.token" space create wares
on "$P" "$T/owner-p.token" cube add wares "Rain follows a falling barometer"
on "$P" "$T/owner-p.token" cube add wares "Fog forms over cold water at dawn"
on "$P" "$T/owner-p.token" cube add wares "Hail needs strong updrafts"
on "$P" "$T/owner-p.token" bundle export wares --out "$T/weather.bundle" --release weather/1.0.0 --terms "$T/terms.json"
on "$M" "$T/owner-m.token" market listing create weather --title "Weather facts" --tag weather
on "$M" "$T/owner-m.token" market publish weather 1.0.0 --bundle "$T/weather.bundle" --terms "$T/terms.json"

echo "== B, the buyer's node: it follows M's log with a token of its own there"
on "$M" "$MA" principal create buyer-node
on "$M" "$MA" credential create buyer-node --token-out "$T/follow.token"
serve b "$B" MEMOS_MARKETPLACE_FOLLOW="$M" MEMOS_MARKETPLACE_FOLLOW_TOKEN_FILE="$T/follow.token" \
    MEMOS_ALLOW_PLAINTEXT_PEERS=true
BA=$T/b/admin.token
on "$M" "$MA" trust export --out "$T/market-root.json"          # M's root names its marketplace key and log policy
on "$B" "$BA" trust add-marketplace --root "$T/market-root.json" # B's admin trusts them: a new root version
on "$B" "$BA" trust export --out "$T/buyer-root.json"

echo "== alice: a principal on B with a key there, and on M"
on "$B" "$BA" principal create alice
on "$B" "$BA" credential create alice --token-out "$T/alice-b.token"
KEY=$(on "$B" "$BA" principal key create alice)
on "$M" "$MA" principal create alice
on "$M" "$MA" credential create alice --token-out "$T/alice-m.token"

echo "== alice finds the release, acquires a license for her key on B, downloads and checks it offline"
on "$M" "$T/alice-m.token" market listing search "weather facts"
LICENSE=$(on "$M" "$T/alice-m.token" market acquire listings/weather/releases/1.0.0 --licensee principals/alice \
    --licensee-key "$KEY" --grant-out "$T/grant.json" --proof-out "$T/grant.proof" | sed -n 1p)
on "$M" "$T/alice-m.token" market download listings/weather/releases/1.0.0 --out "$T/bought.bundle" \
    --license "$LICENSE"
"$MEMOS" market verify "$T/bought.bundle" --grant "$T/grant.json" --proof "$T/grant.proof" \
    --trust-root "$T/buyer-root.json" --licensee principals/alice --licensee-key "$KEY"

echo "== alice imports it into B, which meters it: two searches, then none"
on "$B" "$T/alice-b.token" space create bought
on "$B" "$T/alice-b.token" bundle import bought "$T/bought.bundle" --grant "$T/grant.json" --proof "$T/grant.proof"
on "$B" "$T/alice-b.token" space create pulled                     # or B pulls it from M itself, with her token there:
on "$B" "$T/alice-b.token" market pull pulled "$LICENSE" --marketplace-token-file "$T/alice-m.token"
on "$B" "$T/alice-b.token" cube search bought "when does it rain?" --top-k 1
on "$B" "$T/alice-b.token" cube search bought "what makes hail?" --top-k 1
on "$B" "$T/alice-b.token" cube search bought "is there fog?" --top-k 1   # nothing: the count is used up
on "$B" "$T/alice-b.token" market held list

echo "== the owner revokes the license; once B has synced M's log, the license is revoked there too"
on "$M" "$T/owner-m.token" market revoke "$LICENSE" --reason "refunded"
on "$B" "$BA" market sync
on "$B" "$T/alice-b.token" market held list
echo "== done"
