package app_test

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite", to read the database behind the app's back

	"github.com/wildrydes/rydes/internal/rydestest"
)

// dbSnapshot is a digest of every row of every table of a rydes database,
// with the row counts, to tell whether anything changed.
type dbSnapshot map[string]string

// snapshotDB reads every table of the SQLite database at path: RFQs,
// rosters, quotes, providers, customers, rejections, dead letters,
// notifications, the outbox, settings, whatever the schema holds.
func snapshotDB(t *testing.T, path string) dbSnapshot {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	ctx := rydestest.Context(t)
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.NotEmpty(t, tables)

	snap := dbSnapshot{}
	for _, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		require.NoError(t, err, table)
		cols, err := rows.Columns()
		require.NoError(t, err)
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			lines = append(lines, fmt.Sprintf("%q", vals))
		}
		require.NoError(t, rows.Err())
		rows.Close()
		slices.Sort(lines)
		sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
		snap[table] = fmt.Sprintf("%d rows, %s", len(lines), hex.EncodeToString(sum[:8]))
	}
	return snap
}

// corpusCase is one malformed request and how rydes must refuse it.
type corpusCase struct {
	name   string
	method string
	path   string
	auth   string // "admin", "customer", "provider", "none", or a raw Authorization value after "raw:"
	ctype  string // Content-Type; "" means application/json when there is a body, "-" none
	header map[string][]string
	body   []byte
	status int    // the status it must get
	field  string // the field the problem must name; "" for none in particular
}

// TestMalformedInputCorpus sends every malformed input we could think of to
// every route that takes a body or a path parameter of a real rydes, and
// checks that each gets a 4xx RFC 9457 problem (never a 5xx), naming the
// field at fault where there is one, matching docs/openapi.yaml, and that
// the database is exactly as it was.
func TestMalformedInputCorpus(t *testing.T) {
	cfg := partnerConfig(t)
	cfg.WebhookAllowPrivate = false
	cfg.WebhookAllowNetworks = nil
	cfg.Resolver = fakeResolver{"hooks.partner.example": "93.184.216.34", "hooks.corp.example": "10.9.8.7"}
	// No reconciliation round: its marks (settings) would change the
	// database between the two hashes, whatever the corpus does.
	cfg.ReconcileInterval = -1
	h := start(t, cfg)
	h.key = adminKey

	// Fixtures: a NATS provider that is asked and never answers, a paused
	// webhook provider, a customer, and an open RFQ of that customer's.
	var created struct {
		Credentials struct {
			APIKey string `json:"api_key"`
		} `json:"credentials"`
	}
	r := h.post("/v1/providers", `{"id":"acme","kind":"nats"}`)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	r.json(t, &created)
	providerKey := created.Credentials.APIKey
	r = h.post("/v1/providers", `{"id":"hooks","kind":"webhook","status":"paused","webhook_url":"https://hooks.partner.example/rides"}`)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	r = h.post("/v1/customers", `{"id":"cmr"}`)
	require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
	var cust struct {
		APIKey string `json:"api_key"`
	}
	r.json(t, &cust)
	rfq := h.create(`{"customer":"cmr","from":"Frankfurt","to":"Las Vegas","timeout":"10m"}`)
	id := rfq.ID

	dbPath := filepath.Join(cfg.DataDir, "rydes.db")
	var before dbSnapshot
	rydestest.WaitFor(t, "the outbox to be published", func() bool {
		before = snapshotDB(t, dbPath)
		return strings.HasPrefix(before["outbox"], "0 rows")
	})

	long := func(n int) string { return strings.Repeat("x", n) }
	quote := "/v1/rfqs/" + id + "/quotes"
	decline := "/v1/rfqs/" + id + "/declines"
	nested := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	manyAttrs := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":"v"`, i)
		}
		return "{" + b.String() + "}"
	}
	patterns := func(n int) string {
		return `["` + strings.Repeat(`a","`, n-1) + `a"]`
	}
	s := func(v string) []byte { return []byte(v) }

	cases := []corpusCase{
		// POST /v1/rfqs: syntax.
		{name: "invalid JSON", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":`), status: 400},
		{name: "trailing garbage", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b"} x`), status: 400},
		{name: "two JSON values", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b"}{}`), status: 400},
		{name: "array body", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`[{"customer":"cmr","from":"a","to":"b"}]`), status: 400},
		{name: "string body", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`"from"`), status: 400},
		{name: "null body", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`null`), status: 400, field: "customer"},
		{name: "empty body", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(``), status: 400},
		{name: "deeply nested JSON", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","attributes":{"x":` + nested + `}}`), status: 400},
		{name: "deeply nested body", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(nested), status: 400},
		{name: "raw NUL byte", method: "POST", path: "/v1/rfqs", auth: "admin", body: s("{\"customer\":\"cmr\",\"from\":\"a\x00b\",\"to\":\"b\"}"), status: 400},
		{name: "escaped NUL in from", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a\u0000b","to":"b"}`), status: 400, field: "from"},
		{name: "invalid UTF-8", method: "POST", path: "/v1/rfqs", auth: "admin", body: s("{\"customer\":\"cmr\",\"from\":\"\xff\xfe\",\"to\":\"b\"}"), status: 400},
		{name: "overlong UTF-8 encoding", method: "POST", path: "/v1/rfqs", auth: "admin", body: s("{\"customer\":\"cmr\",\"from\":\"\xc0\xaf\",\"to\":\"b\"}"), status: 400},
		{name: "lone surrogate escape", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"\ud800","to":"b"}`), status: 400},
		{name: "huge body", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"` + long(200<<10) + `","to":"b"}`), status: 413},
		// POST /v1/rfqs: fields.
		{name: "unknown field", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","price":1}`), status: 400, field: "price"},
		{name: "from wrong type", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":5,"to":"b"}`), status: 400, field: "from"},
		{name: "to object", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":{}}`), status: 400, field: "to"},
		{name: "blank from", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"  ","to":"b"}`), status: 400, field: "from"},
		{name: "missing customer", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"from":"a","to":"b"}`), status: 400, field: "customer"},
		{name: "overlong from", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"` + long(257) + `","to":"b"}`), status: 400, field: "from"},
		{name: "overlong customer", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"` + long(129) + `","from":"a","to":"b"}`), status: 400, field: "customer"},
		{name: "control character in to", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b\u001b[2J"}`), status: 400, field: "to"},
		{name: "passengers negative", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","passengers":-1}`), status: 400, field: "passengers"},
		{name: "passengers huge", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","passengers":1e100}`), status: 400, field: "passengers"},
		{name: "passengers fraction", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","passengers":2.5}`), status: 400, field: "passengers"},
		{name: "passengers string", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","passengers":"2"}`), status: 400, field: "passengers"},
		{name: "too many attributes", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","attributes":` + manyAttrs(33) + `}`), status: 400, field: "attributes"},
		{name: "overlong attribute value", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","attributes":{"fare":"` + long(257) + `"}}`), status: 400, field: "attributes.fare"},
		{name: "bad attribute key", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","attributes":{"a b":"v"}}`), status: 400, field: "attributes"},
		{name: "attribute not a string", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","attributes":{"fare":12}}`), status: 400, field: "attributes.fare"},
		{name: "timeout garbage", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","timeout":"forever"}`), status: 400, field: "timeout"},
		{name: "timeout negative", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","timeout":"-5s"}`), status: 400, field: "timeout"},
		{name: "timeout too long", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","timeout":"9999h"}`), status: 400, field: "timeout"},
		{name: "timeout overflow", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","timeout":"99999999999999999999h"}`), status: 400, field: "timeout"},
		{name: "timeout overlong", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","timeout":"` + strings.Repeat("0", 100) + `30s"}`), status: 400, field: "timeout"},
		{name: "pickup_at overlong", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","pickup_at":"2030-07-01T09:30:00.` + strings.Repeat("0", 100) + `Z"}`), status: 400, field: "pickup_at"},
		{name: "pickup_at garbage", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","pickup_at":"tomorrow"}`), status: 400, field: "pickup_at"},
		{name: "notify_url not http", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","notify_url":"javascript:alert(1)"}`), status: 400, field: "notify_url"},
		{name: "notify_url private", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","notify_url":"http://hooks.corp.example/done"}`), status: 400, field: "notify_url"},
		{name: "notify_url metadata", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","notify_url":"http://169.254.169.254/latest"}`), status: 400, field: "notify_url"},
		{name: "notify_url overlong", method: "POST", path: "/v1/rfqs", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","notify_url":"https://hooks.partner.example/` + long(2100) + `"}`), status: 400, field: "notify_url"},
		{name: "another customer's name", method: "POST", path: "/v1/rfqs", auth: "customer", body: s(`{"customer":"someone-else","from":"a","to":"b"}`), status: 403, field: "customer"},
		{name: "text/plain", method: "POST", path: "/v1/rfqs", auth: "admin", ctype: "text/plain", body: s(`{"customer":"cmr","from":"a","to":"b"}`), status: 415},
		{name: "form encoded", method: "POST", path: "/v1/rfqs", auth: "admin", ctype: "application/x-www-form-urlencoded", body: s(`customer=cmr&from=a&to=b`), status: 415},
		{name: "no content type", method: "POST", path: "/v1/rfqs", auth: "admin", ctype: "-", body: s(`{"customer":"cmr","from":"a","to":"b"}`), status: 415},
		{name: "malformed content type", method: "POST", path: "/v1/rfqs", auth: "admin", ctype: "application/json; charset", body: s(`{"customer":"cmr","from":"a","to":"b"}`), status: 415},
		{name: "wrong method on rfqs", method: "PUT", path: "/v1/rfqs", auth: "admin", body: s(`{}`), status: 405},
		{name: "garbage authorization", method: "POST", path: "/v1/rfqs", auth: "raw:Basic Y21yOmNtcg==", body: s(`{"customer":"cmr","from":"a","to":"b"}`), status: 401},
		{name: "no key", method: "POST", path: "/v1/rfqs", auth: "none", body: s(`{"customer":"cmr","from":"a","to":"b"}`), status: 401},

		// The workshop's routes.
		{name: "seed fare object", method: "POST", path: "/submit-instant-ride-rfq", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","fare":{}}`), status: 400, field: "fare"},
		{name: "seed duration overlong", method: "POST", path: "/submit-instant-ride-rfq", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","duration":"` + long(300) + `"}`), status: 400, field: "duration"},
		{name: "seed huge number", method: "POST", path: "/submit-instant-ride-rfq", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","distance":1` + strings.Repeat("0", 400) + `}`), status: 400, field: "distance"},
		{name: "seed unknown field", method: "POST", path: "/submit-instant-ride-rfq", auth: "admin", body: s(`{"customer":"cmr","from":"a","to":"b","rfq-id":"x"}`), status: 400, field: "rfq-id"},
		{name: "seed query bad id", method: "GET", path: "/query-instant-ride-rfq/not-an-id", auth: "admin", status: 400, field: "id"},

		// RFQ paths and headers.
		{name: "rfq id not a uuid", method: "GET", path: "/v1/rfqs/not-a-uuid", auth: "admin", status: 400, field: "id"},
		{name: "rfq id too long", method: "GET", path: "/v1/rfqs/" + long(5000), auth: "admin", status: 400, field: "id"},
		{name: "rfq id unicode", method: "GET", path: "/v1/rfqs/" + strings.Repeat("ü", 18), auth: "admin", status: 400, field: "id"},
		{name: "rfq id encoded slash", method: "GET", path: "/v1/rfqs/a%2Fb", auth: "admin", status: 400, field: "id"},
		{name: "rfq id with slash", method: "GET", path: "/v1/rfqs/" + id + "/x/y", auth: "admin", status: 404},
		{name: "rfq id with NUL", method: "DELETE", path: "/v1/rfqs/%00" + id[1:], auth: "admin", status: 400, field: "id"},
		{name: "cancel with a body", method: "DELETE", path: "/v1/rfqs/" + id, auth: "admin", body: s(`{"reason":"x"}`), status: 400},
		{name: "wait garbage", method: "GET", path: "/v1/rfqs/" + id + "?wait=soon", auth: "admin", status: 400, field: "wait"},
		{name: "wait zero", method: "GET", path: "/v1/rfqs/" + id + "?wait=0s", auth: "admin", status: 400, field: "wait"},
		{name: "wait overlong", method: "GET", path: "/v1/rfqs/" + id + "?wait=" + strings.Repeat("0", 100) + "1s", auth: "admin", status: 400, field: "wait"},
		{name: "wait too long", method: "GET", path: "/v1/rfqs/" + id + "?wait=1h", auth: "admin", status: 400, field: "wait"},
		{name: "Last-Event-ID letters", method: "GET", path: "/v1/rfqs/" + id + "/events", auth: "admin", header: map[string][]string{"Last-Event-ID": {"abc"}}, status: 400, field: "Last-Event-ID"},
		{name: "Last-Event-ID negative", method: "GET", path: "/v1/rfqs/" + id + "/events", auth: "admin", header: map[string][]string{"Last-Event-ID": {"-1"}}, status: 400, field: "Last-Event-ID"},
		{name: "Last-Event-ID overflow", method: "GET", path: "/v1/rfqs/" + id + "/events", auth: "admin", header: map[string][]string{"Last-Event-ID": {"99999999999999999999"}}, status: 400, field: "Last-Event-ID"},
		{name: "Last-Event-ID twice", method: "GET", path: "/v1/rfqs/" + id + "/events", auth: "admin", header: map[string][]string{"Last-Event-ID": {"1", "2"}}, status: 400, field: "Last-Event-ID"},
		{name: "Last-Event-ID unicode digits", method: "GET", path: "/v1/rfqs/" + id + "/events", auth: "admin", header: map[string][]string{"Last-Event-ID": {"١٢"}}, status: 400, field: "Last-Event-ID"},
		{name: "after garbage", method: "GET", path: "/v1/rfqs/" + id + "/events?after=x", auth: "admin", status: 400, field: "after"},
		{name: "events bad id", method: "GET", path: "/v1/rfqs/zz/events", auth: "admin", status: 400, field: "id"},
		{name: "notifications bad id", method: "GET", path: "/v1/rfqs/" + long(40) + "/notifications", auth: "admin", status: 400, field: "id"},

		// Provider answers.
		{name: "quote negative price", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"-5","currency":"EUR"}}`), status: 400, field: "price.amount"},
		{name: "quote NaN price", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"NaN","currency":"EUR"}}`), status: 400, field: "price.amount"},
		{name: "quote infinite price", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"Inf","currency":"EUR"}}`), status: 400, field: "price.amount"},
		{name: "quote huge price", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"99999999999","currency":"EUR"}}`), status: 400, field: "price.amount"},
		{name: "quote zero price", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"0","currency":"EUR"}}`), status: 400, field: "price.amount"},
		{name: "quote exponent price", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"1e3","currency":"EUR"}}`), status: 400, field: "price.amount"},
		{name: "quote lower-case currency", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"5","currency":"eur"}}`), status: 400, field: "price.currency"},
		{name: "quote long currency", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"5","currency":"EURO"}}`), status: 400, field: "price.currency"},
		{name: "quote no price", method: "POST", path: quote, auth: "provider", body: s(`{}`), status: 400, field: "price"},
		{name: "quote negative eta", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"5","currency":"EUR"},"eta_seconds":-1}`), status: 400, field: "eta_seconds"},
		{name: "quote expired", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"5","currency":"EUR"},"expires_at":"2001-01-01T00:00:00Z"}`), status: 400, field: "expires_at"},
		{name: "quote expires_at overlong", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"5","currency":"EUR"},"expires_at":"2099-01-01T00:00:00.` + strings.Repeat("0", 100) + `Z"}`), status: 400, field: "expires_at"},
		{name: "quote names a provider", method: "POST", path: quote, auth: "provider", body: s(`{"price":{"amount":"5","currency":"EUR"},"provider":"other"}`), status: 400, field: "provider"},
		{name: "quote bad rfq id", method: "POST", path: "/v1/rfqs/" + long(300) + "/quotes", auth: "provider", body: s(`{"price":{"amount":"5","currency":"EUR"}}`), status: 400, field: "id"},
		{name: "quote with admin key", method: "POST", path: quote, auth: "admin", body: s(`{"price":{"amount":"5","currency":"EUR"}}`), status: 401},
		{name: "decline overlong reason", method: "POST", path: decline, auth: "provider", body: s(`{"reason":"` + long(600) + `"}`), status: 400, field: "reason"},
		{name: "decline control characters", method: "POST", path: decline, auth: "provider", body: s(`{"reason":"bad\u0007bell"}`), status: 400, field: "reason"},
		{name: "decline invalid UTF-8", method: "POST", path: decline, auth: "provider", body: s("{\"reason\":\"\xed\xa0\x80\"}"), status: 400},
		{name: "decline wrong type", method: "POST", path: decline, auth: "provider", body: s(`{"reason":["no"]}`), status: 400, field: "reason"},
		{name: "answer wrong method", method: "GET", path: decline, auth: "provider", status: 405},

		// Providers.
		{name: "provider id with dot", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"a.b","kind":"nats"}`), status: 400, field: "id"},
		{name: "provider id wildcard", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"a>","kind":"nats"}`), status: 400, field: "id"},
		{name: "provider id too long", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"` + long(65) + `","kind":"nats"}`), status: 400, field: "id"},
		{name: "provider id unicode", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"ünicorn","kind":"nats"}`), status: 400, field: "id"},
		{name: "provider kind unknown", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"sqsy","kind":"sqs"}`), status: 400, field: "kind"},
		{name: "provider simulated kind", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"simmy","kind":"simulated"}`), status: 400, field: "kind"},
		{name: "webhook without url", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"hooky","kind":"webhook"}`), status: 400, field: "webhook_url"},
		{name: "webhook url javascript", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"hooky","kind":"webhook","webhook_url":"javascript:alert(1)"}`), status: 400, field: "webhook_url"},
		{name: "webhook url with user", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"hooky","kind":"webhook","webhook_url":"https://u:p@hooks.partner.example/"}`), status: 400, field: "webhook_url"},
		{name: "webhook url loopback", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"hooky","kind":"webhook","webhook_url":"http://127.0.0.1:9090/"}`), status: 400, field: "webhook_url"},
		{name: "webhook url private name", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"hooky","kind":"webhook","webhook_url":"https://hooks.corp.example/"}`), status: 400, field: "webhook_url"},
		{name: "webhook url on nats provider", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"natsy","kind":"nats","webhook_url":"https://hooks.partner.example/"}`), status: 400, field: "webhook_url"},
		{name: "provider name overlong", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"named","kind":"nats","name":"` + long(129) + `"}`), status: 400, field: "name"},
		{name: "provider status unknown", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"stat","kind":"nats","status":"deleted"}`), status: 400, field: "status"},
		{name: "filter too many patterns", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":{"from":` + patterns(257) + `}}`), status: 400, field: "filter.from"},
		{name: "filter malformed pattern", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":{"to":["[a-"]}}`), status: 400, field: "filter.to"},
		{name: "filter overlong pattern", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":{"to":["` + long(257) + `"]}}`), status: 400, field: "filter.to"},
		{name: "filter too many attributes", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":{"attributes":` + strings.ReplaceAll(manyAttrs(33), `"v"`, `["v"]`) + `}}`), status: 400, field: "filter.attributes"},
		{name: "filter attribute no values", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":{"attributes":{"fare":[]}}}`), status: 400, field: "filter.attributes.fare"},
		{name: "filter max_passengers huge", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":{"max_passengers":65}}`), status: 400, field: "filter.max_passengers"},
		{name: "filter unknown member", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":{"via":["x"]}}`), status: 400, field: "filter.via"},
		{name: "filter not an object", method: "POST", path: "/v1/providers", auth: "admin", body: s(`{"id":"filt","kind":"nats","filter":"all"}`), status: 400, field: "filter"},
		{name: "provider create by customer", method: "POST", path: "/v1/providers", auth: "customer", body: s(`{"id":"sneaky","kind":"nats"}`), status: 401},
		{name: "patch empty", method: "PATCH", path: "/v1/providers/hooks", auth: "admin", body: s(`{}`), status: 400},
		{name: "patch null", method: "PATCH", path: "/v1/providers/hooks", auth: "admin", body: s(`{"name":null}`), status: 400, field: "name"},
		{name: "patch private url", method: "PATCH", path: "/v1/providers/hooks", auth: "admin", body: s(`{"webhook_url":"http://[::1]/"}`), status: 400, field: "webhook_url"},
		{name: "patch metadata url", method: "PATCH", path: "/v1/providers/hooks", auth: "admin", body: s(`{"webhook_url":"http://[fd00:ec2::254]/"}`), status: 400, field: "webhook_url"},
		{name: "patch status unknown", method: "PATCH", path: "/v1/providers/acme", auth: "admin", body: s(`{"status":"gone"}`), status: 400, field: "status"},
		{name: "patch bad id", method: "PATCH", path: "/v1/providers/a.b", auth: "admin", body: s(`{"status":"paused"}`), status: 400, field: "id"},
		{name: "patch unknown provider", method: "PATCH", path: "/v1/providers/nobody", auth: "admin", body: s(`{"status":"paused"}`), status: 404},
		{name: "patch text/plain", method: "PATCH", path: "/v1/providers/acme", auth: "admin", ctype: "text/plain", body: s(`{"status":"paused"}`), status: 415},
		{name: "get provider id too long", method: "GET", path: "/v1/providers/" + long(65), auth: "admin", status: 400, field: "id"},
		{name: "delete provider unicode id", method: "DELETE", path: "/v1/providers/%C3%BCnicorn", auth: "admin", status: 400, field: "id"},
		{name: "delete provider with a body", method: "DELETE", path: "/v1/providers/acme", auth: "admin", body: s(`{}`), status: 400},
		{name: "rotate bad id", method: "POST", path: "/v1/providers/a%20b/rotate", auth: "admin", status: 400, field: "id"},
		{name: "rotate with a body", method: "POST", path: "/v1/providers/acme/rotate", auth: "admin", body: s(`{"now":true}`), status: 400},
		{name: "stats bad id", method: "GET", path: "/v1/providers/*/stats", auth: "admin", status: 400, field: "id"},
		{name: "providers wrong method", method: "PUT", path: "/v1/providers/acme", auth: "admin", body: s(`{}`), status: 405},

		// Dead letters.
		{name: "dead letters limit zero", method: "GET", path: "/v1/dead-letters?limit=0", auth: "admin", status: 400, field: "limit"},
		{name: "dead letters limit huge", method: "GET", path: "/v1/dead-letters?limit=99999999999999999999", auth: "admin", status: 400, field: "limit"},
		{name: "dead letters before negative", method: "GET", path: "/v1/dead-letters?before=-1", auth: "admin", status: 400, field: "before"},
		{name: "dead letters bad provider", method: "GET", path: "/v1/dead-letters?provider=a.b", auth: "admin", status: 400, field: "provider"},
		{name: "dead letters unknown parameter", method: "GET", path: "/v1/dead-letters?sort=asc", auth: "admin", status: 400, field: "sort"},
		{name: "replay id zero", method: "POST", path: "/v1/dead-letters/0/replay", auth: "admin", status: 400, field: "id"},
		{name: "replay id letters", method: "POST", path: "/v1/dead-letters/abc/replay", auth: "admin", status: 400, field: "id"},
		{name: "replay id overflow", method: "POST", path: "/v1/dead-letters/99999999999999999999999/replay", auth: "admin", status: 400, field: "id"},
		{name: "replay unknown", method: "POST", path: "/v1/dead-letters/42/replay", auth: "admin", status: 404},
		{name: "replay with a body", method: "POST", path: "/v1/dead-letters/42/replay", auth: "admin", body: s(`{}`), status: 400},

		// Customers.
		{name: "customer id with space", method: "POST", path: "/v1/customers", auth: "admin", body: s(`{"id":"a b"}`), status: 400, field: "id"},
		{name: "customer id too long", method: "POST", path: "/v1/customers", auth: "admin", body: s(`{"id":"` + long(65) + `"}`), status: 400, field: "id"},
		{name: "customer name overlong", method: "POST", path: "/v1/customers", auth: "admin", body: s(`{"id":"named","name":"` + long(129) + `"}`), status: 400, field: "name"},
		{name: "customer name blank", method: "POST", path: "/v1/customers", auth: "admin", body: s(`{"id":"named","name":" "}`), status: 400, field: "name"},
		{name: "customer unknown field", method: "POST", path: "/v1/customers", auth: "admin", body: s(`{"id":"named","api_key":"mine"}`), status: 400, field: "api_key"},
		{name: "customer exists", method: "POST", path: "/v1/customers", auth: "admin", body: s(`{"id":"cmr"}`), status: 409},
		{name: "delete customer bad id", method: "DELETE", path: "/v1/customers/" + long(65), auth: "admin", status: 400, field: "id"},
		{name: "delete customer with a body", method: "DELETE", path: "/v1/customers/cmr", auth: "admin", body: s(`{}`), status: 400},
		{name: "rotate customer bad id", method: "POST", path: "/v1/customers/%F0%9F%A6%84/rotate", auth: "admin", status: 400, field: "id"},
		{name: "customers wrong method", method: "PATCH", path: "/v1/customers/cmr", auth: "admin", body: s(`{}`), status: 405},
	}
	require.GreaterOrEqual(t, len(cases), 40)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader = http.NoBody
			if tc.body != nil {
				rd = bytes.NewReader(tc.body)
			}
			req, err := http.NewRequestWithContext(rydestest.Context(t), tc.method, h.app.URL()+tc.path, rd)
			require.NoError(t, err)
			switch {
			case tc.ctype == "-":
			case tc.ctype != "":
				req.Header.Set("Content-Type", tc.ctype)
			case tc.body != nil:
				req.Header.Set("Content-Type", "application/json")
			}
			switch {
			case tc.auth == "admin":
				req.Header.Set("Authorization", "Bearer "+adminKey)
			case tc.auth == "customer":
				req.Header.Set("Authorization", "Bearer "+cust.APIKey)
			case tc.auth == "provider":
				req.Header.Set("Authorization", "Bearer "+providerKey)
			case strings.HasPrefix(tc.auth, "raw:"):
				req.Header.Set("Authorization", strings.TrimPrefix(tc.auth, "raw:"))
			}
			for k, vs := range tc.header {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			respBody, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Less(t, resp.StatusCode, 500, "never a 5xx: %s", respBody)
			h.val.Check(t, req, tc.body, resp, respBody)
			p := requireFieldProblem(t, response{status: resp.StatusCode, header: resp.Header, body: respBody}, tc.status, tc.field)
			if tc.field == "" {
				return
			}
			assert.Equal(t, tc.field+" "+p.Errors[0].Reason, p.Detail, "the detail names the field")
		})
	}

	after := snapshotDB(t, dbPath)
	assert.Equal(t, before, after, "malformed input changed the database")

	// The fixtures still work: nothing was broken on the way.
	got := h.rfq(id)
	require.Equal(t, "open", string(got.Status))
	r = h.get("/v1/providers/hooks")
	require.Equal(t, http.StatusOK, r.status)
	var hooks struct {
		WebhookURL string `json:"webhook_url"`
	}
	require.NoError(t, json.Unmarshal(r.body, &hooks))
	require.Equal(t, "https://hooks.partner.example/rides", hooks.WebhookURL)
}
