#!/usr/bin/env bash
# demo.sh: the flagship workflow on a laptop, without real accounts.
#
# Starts a throwaway PostgreSQL (scripts/pg.sh, unless DATABASE_URL is set),
# the Shopify, HubSpot and Sage fakes with sample data (scripts/demo, on
# 127.0.0.1 only) and bin/synchron serve (SYNCHRON_ADDR, default
# 127.0.0.1:8080); signs a demo user up, creates the three connections and
# the two flagship workflows: "Shopify customers <-> HubSpot contacts"
# (two-way, matched by email) and "Shopify orders -> Sage sales invoices"
# (one-way: lines mapped, the Sage contact looked up by email or created,
# the invoice id written back to the order), runs each once and prints what
# to look at. Ctrl-C stops everything
# it started. Run through `make demo` (which builds first).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work="$root/.data/demo"
mkdir -p "$work"
umask 077

[ -x bin/synchron ] || make build
go build -o bin/synchron-demo-fakes ./scripts/demo

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "demo: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE PATTERN PID: until FILE holds a line matching PATTERN (60 s).
wait_for() {
  local deadline=$((SECONDS + 60))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || { echo "demo: process $3 exited:" >&2; cat "$1" "$1.err" >&2 2>/dev/null; exit 1; }
    [ $SECONDS -lt $deadline ] || { echo "demo: timed out waiting for '$2' in $1" >&2; exit 1; }
    sleep 0.2
  done
}

# json_str FIELD: the first string value of FIELD in the JSON on stdin.
json_str() { grep -o "\"$1\": *\"[^\"]*\"" | head -1 | sed -E 's/.*: *"([^"]*)"/\1/'; }

export DATABASE_URL="${DATABASE_URL:-$(scripts/pg.sh)}"

bin/synchron-demo-fakes >"$work/fakes.out" 2>"$work/fakes.out.err" &
pids+=($!)
wait_for "$work/fakes.out" '^ready$' "${pids[-1]}"
while IFS='=' read -r k v; do
  case "$k" in SHOPIFY_* | HUBSPOT_* | SAGE_*) printf -v "$k" '%s' "$v" ;; esac
done <"$work/fakes.out"

addr="${SYNCHRON_ADDR:-127.0.0.1:8080}"
env SYNCHRON_ADDR="$addr" SYNCHRON_PLUGIN_DIR="${SYNCHRON_PLUGIN_DIR:-$root/bin/plugins}" SYNCHRON_PLUGIN_REINSTALL=on \
  SYNCHRON_SECRET_KEY="${SYNCHRON_SECRET_KEY:-$(head -c 32 /dev/urandom | base64)}" \
  SYNCHRON_LOG_FORMAT=text bin/synchron serve >"$work/synchron.out" 2>"$work/synchron.log" &
pids+=($!)
wait_for "$work/synchron.out" '^synchron: listening on ' "${pids[-1]}"
api=$(sed -n 's/^synchron: listening on //p' "$work/synchron.out" | head -1)

# call METHOD PATH [BODY]: the API with the demo user's token; fails on >= 400.
call() {
  curl -sS --fail-with-body -X "$1" "$api$2" ${token:+-H "Authorization: Bearer $token"} \
    ${3:+-H 'Content-Type: application/json' -d "$3"}
}

email="demo-$(date +%s)@example.com"
password="a demo password, not a secret"
token=""
token=$(call POST /v1/signup "{\"email\":\"$email\",\"password\":\"$password\",\"name\":\"Demo\"}" | json_str token)

shop=$(call POST /v1/connections "{\"app\":\"shopify\",\"name\":\"Demo shop\",\"config\":{\"shop\":\"demo-shop.myshopify.com\",\"access_token\":\"$SHOPIFY_TOKEN\",\"base_url\":\"$SHOPIFY_URL\"}}" | json_str id)
hub=$(call POST /v1/connections "{\"app\":\"hubspot\",\"name\":\"Demo CRM\",\"config\":{\"access_token\":\"$HUBSPOT_TOKEN\",\"base_url\":\"$HUBSPOT_URL\",\"search_delay_seconds\":0}}" | json_str id)
sage=$(call POST /v1/connections "{\"app\":\"sage\",\"name\":\"Demo accounts\",\"config\":{\"client_id\":\"$SAGE_CLIENT_ID\",\"client_secret\":\"$SAGE_CLIENT_SECRET\",\"access_token\":\"$SAGE_ACCESS_TOKEN\",\"refresh_token\":\"$SAGE_REFRESH_TOKEN\",\"expires_at\":\"$SAGE_EXPIRES_AT\",\"business_id\":\"$SAGE_BUSINESS\",\"base_url\":\"$SAGE_URL\",\"token_url\":\"$SAGE_URL/token\"}}" | json_str id)

wf=$(call POST /v1/workflows "{\"name\":\"Shopify customers <-> HubSpot contacts\",
  \"source\":{\"connection_id\":\"$shop\",\"object\":\"customers\"},
  \"target\":{\"connection_id\":\"$hub\",\"object\":\"contacts\"},
  \"direction\":\"two_way\",
  \"mapping\":[{\"source\":\"email\",\"target\":\"email\",\"transform\":\"trim,lower\"},
    {\"source\":\"first_name\",\"target\":\"firstname\"},{\"source\":\"last_name\",\"target\":\"lastname\"},
    {\"source\":\"phone\",\"target\":\"phone\"}],
  \"match\":{\"source\":\"email\",\"target\":\"email\"},
  \"conflict\":\"newest_wins\",\"interval_seconds\":900}" | json_str id)

orders=$(call POST /v1/workflows "{\"name\":\"Shopify orders -> Sage sales invoices\",
  \"source\":{\"connection_id\":\"$shop\",\"object\":\"orders\"},
  \"target\":{\"connection_id\":\"$sage\",\"object\":\"sales_invoices\"},
  \"direction\":\"one_way\",
  \"mapping\":[{\"source\":\"name\",\"target\":\"reference\"},
    {\"source\":\"created_at\",\"target\":\"date\",\"transform\":\"format_date\",\"format\":\"YYYY-MM-DD\"},
    {\"source\":\"currency\",\"target\":\"currency_id\"},
    {\"source\":\"email\",\"target\":\"contact_id\",\"transform\":\"trim\",\"lookup\":{\"object\":\"contacts\",\"field\":\"email\",\"create\":[
      {\"source\":\"email\",\"target\":\"email\",\"transform\":\"trim,lower\"},
      {\"source\":\"customer_name\",\"target\":\"name\",\"default\":\"Shopify customer\"},
      {\"target\":\"contact_type_ids\",\"value\":[\"CUSTOMER\"]}]}},
    {\"source\":\"line_items\",\"target\":\"invoice_lines\",\"items\":[
      {\"source\":\"name\",\"target\":\"description\"},{\"source\":\"quantity\",\"target\":\"quantity\"},
      {\"source\":\"price\",\"target\":\"unit_price\",\"transform\":\"number\"},
      {\"target\":\"ledger_account_id\",\"value\":\"la-sales\"}]}],
  \"write_back\":{\"field\":\"external_id\"},
  \"interval_seconds\":900}" | json_str id)

# run_once WORKFLOW: runs it and waits; sets run, status and body.
run_once() {
  run=$(call POST "/v1/workflows/$1/run" | json_str id)
  local deadline=$((SECONDS + 120))
  while :; do
    body=$(call GET "/v1/runs/$run")
    status=$(json_str status <<<"$body")
    case "$status" in succeeded | partial | failed) break ;; esac
    [ $SECONDS -lt $deadline ] || { echo "demo: run $run still $status after 120 s" >&2; break; }
    sleep 0.5
  done
}
run_once "$orders"
orders_run=$run orders_status=$status orders_body=$body
run_once "$wf"

cat <<EOF

Synchron demo is running (Ctrl-C stops it).

  API            $api   (logs: $work/synchron.log)
  demo user      $email / "$password"
  token          $token
  connections    Shopify $shop, HubSpot $hub, Sage $sage
  workflow       $wf  "Shopify customers <-> HubSpot contacts" (two-way, matched by email)
  latest run     $run: $status  (the scheduler may have run it first: GET /v1/workflows/$wf/runs)
                 $body
  workflow       $orders  "Shopify orders -> Sage sales invoices" (one-way, contacts looked up or created)
  latest run     $orders_run: $orders_status
                 $orders_body

Fakes (127.0.0.1 only; seeded: 30 Shopify customers, 25 HubSpot contacts of which 10 shared,
12 products and 8 orders in Shopify, 5 contacts and 12 products in Sage):
  Shopify GraphQL  $SHOPIFY_URL/admin/api/2025-01/graphql.json  (X-Shopify-Access-Token: $SHOPIFY_TOKEN)
  HubSpot CRM      $HUBSPOT_URL/crm/v3/objects/contacts         (Authorization: Bearer $HUBSPOT_TOKEN)
  Sage Accounting  $SAGE_URL/contacts                           (Authorization: Bearer $SAGE_ACCESS_TOKEN, X-Business: $SAGE_BUSINESS; expires in 5 min)

Try:
  export TOKEN=$token
  curl -s $api/v1/workflows/$wf -H "Authorization: Bearer \$TOKEN"
  curl -s $api/v1/workflows/$wf/records -H "Authorization: Bearer \$TOKEN"
  curl -s $api/v1/runs/$run/records -H "Authorization: Bearer \$TOKEN"
  curl -s $api/v1/workflows/$orders/records -H "Authorization: Bearer \$TOKEN"     # order -> invoice links
  curl -s "$SAGE_URL/sales_invoices?attributes=all" -H "Authorization: Bearer $SAGE_ACCESS_TOKEN" -H "X-Business: $SAGE_BUSINESS"
  curl -s -X POST $api/v1/workflows/$wf/run -H "Authorization: Bearer \$TOKEN"
  curl -s "$HUBSPOT_URL/crm/v3/objects/contacts?limit=100&properties=email,firstname,lastname,phone" -H "Authorization: Bearer $HUBSPOT_TOKEN"
  curl -s $SHOPIFY_URL/admin/api/2025-01/graphql.json -H "X-Shopify-Access-Token: $SHOPIFY_TOKEN" \\
    -H 'Content-Type: application/json' -d '{"query":"{ customers(first: 50) { nodes { id email firstName lastName phone } } }"}'
  curl -s $SHOPIFY_URL/admin/api/2025-01/graphql.json -H "X-Shopify-Access-Token: $SHOPIFY_TOKEN" \\
    -H 'Content-Type: application/json' -d '{"query":"{ orders(first: 10) { nodes { name note invoice: metafield(namespace: \"synchron\", key: \"external_id\") { value } } } }"}'
EOF

wait "${pids[@]}"
