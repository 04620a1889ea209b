package rydes_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
)

var limits = rydes.Limits{DefaultTimeout: 30 * time.Second, MaxTimeout: 5 * time.Minute}

func TestRFQRequestValidate(t *testing.T) {
	ok := rydes.RFQRequest{Customer: "cmr", From: "Frankfurt", To: "Las Vegas"}
	for _, tc := range []struct {
		name  string
		edit  func(*rydes.RFQRequest)
		field string
	}{
		{"valid", func(*rydes.RFQRequest) {}, ""},
		{"all optional fields", func(r *rydes.RFQRequest) {
			r.Passengers, r.Timeout, r.Attributes = 4, time.Minute, map[string]string{"class": "gold", "fare.max": "90"}
		}, ""},
		{"missing customer", func(r *rydes.RFQRequest) { r.Customer = "" }, "customer"},
		{"blank from", func(r *rydes.RFQRequest) { r.From = " \t" }, "from"},
		{"missing to", func(r *rydes.RFQRequest) { r.To = "" }, "to"},
		{"control character", func(r *rydes.RFQRequest) { r.To = "Las\x00Vegas" }, "to"},
		{"invalid utf-8", func(r *rydes.RFQRequest) { r.From = "\xff" }, "from"},
		{"too long", func(r *rydes.RFQRequest) { r.From = strings.Repeat("x", rydes.MaxTextLen+1) }, "from"},
		{"negative passengers", func(r *rydes.RFQRequest) { r.Passengers = -1 }, "passengers"},
		{"too many passengers", func(r *rydes.RFQRequest) { r.Passengers = rydes.MaxPassengers + 1 }, "passengers"},
		{"timeout too short", func(r *rydes.RFQRequest) { r.Timeout = time.Millisecond }, "timeout"},
		{"timeout too long", func(r *rydes.RFQRequest) { r.Timeout = 6 * time.Minute }, "timeout"},
		{"bad attribute key", func(r *rydes.RFQRequest) { r.Attributes = map[string]string{"a b": "c"} }, "attributes"},
		{"bad attribute value", func(r *rydes.RFQRequest) { r.Attributes = map[string]string{"k": "\n"} }, "attributes.k"},
		{"too many attributes", func(r *rydes.RFQRequest) {
			r.Attributes = map[string]string{}
			for i := range rydes.MaxAttributes + 1 {
				r.Attributes[strings.Repeat("k", i+1)] = "v"
			}
		}, "attributes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			err := r.Validate(limits)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, rydes.EINVALID, rydes.ErrorCodeOf(err))
			require.Equal(t, tc.field, rydes.ErrorFieldOf(err))
		})
	}
}

func TestNewRFQ(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	rfq, err := rydes.NewRFQ("id", rydes.RFQRequest{Customer: " cmr ", From: "A", To: "B"}, []string{"p1", "p2"}, now, limits)
	require.NoError(t, err)
	require.Equal(t, rydes.StatusOpen, rfq.Status)
	require.Equal(t, "cmr", rfq.Customer)
	require.Equal(t, time.UTC, rfq.CreatedAt.Location())
	require.Equal(t, 123456000, rfq.CreatedAt.Nanosecond(), "times are kept to the microsecond")
	require.Equal(t, rfq.CreatedAt.Add(30*time.Second), rfq.Deadline)
	require.Equal(t, []string{"p1", "p2"}, rfq.Asked())
	for _, p := range rfq.Providers {
		require.Equal(t, rydes.ProviderPending, p.State)
	}

	_, err = rydes.NewRFQ("id", rydes.RFQRequest{Customer: "c", From: "A", To: "B"}, nil, now, limits)
	require.Equal(t, rydes.EUNMATCHED, rydes.ErrorCodeOf(err))
}

func TestValidateIDs(t *testing.T) {
	require.NoError(t, rydes.ValidateID(rydes.NewID()))
	require.NoError(t, rydes.ValidateID("8b095f9e-cffc-4790-91a6-28353fa30e42"))
	for _, bad := range []string{"", "x", "8b095f9ecffc479091a628353fa30e42", "{8b095f9e-cffc-4790-91a6-28353fa30e42}", "urn:uuid:8b095f9e-cffc-4790-91a6-28353fa30e42"} {
		require.Error(t, rydes.ValidateID(bad), bad)
	}
	require.NoError(t, rydes.ValidateProviderID("UnicornManagementResource1"))
	for _, bad := range []string{"", "a.b", "a*", "a>", "a b", strings.Repeat("p", 65)} {
		require.Error(t, rydes.ValidateProviderID(bad), bad)
	}
}

// NewID makes valid ids of UUID version 7 that sort in the order made, so
// that the store's indexes keyed by RFQ id grow at their end.
func TestNewIDSortsInOrderMade(t *testing.T) {
	prev := ""
	for i := range 1000 {
		id := rydes.NewID()
		require.NoError(t, rydes.ValidateID(id))
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), u.Version())
		require.Greater(t, id, prev, "id %d sorts after the one before", i)
		prev = id
	}
}

// FuzzValidateID checks ValidateID against its definition: what
// uuid.Parse takes and writes back the same, up to case.
func FuzzValidateID(f *testing.F) {
	for _, seed := range []string{
		"8b095f9e-cffc-4790-91a6-28353fa30e42", "8B095F9E-CFFC-4790-91A6-28353FA30E42",
		"8b095f9ecffc479091a628353fa30e42", "{8b095f9e-cffc-4790-91a6-28353fa30e42}",
		"urn:uuid:8b095f9e-cffc-4790-91a6-28353fa30e42", "8b095f9e-cffc-4790-91a6-28353fa30e4g",
		"8b095f9e+cffc-4790-91a6-28353fa30e42", "", "x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		u, err := uuid.Parse(id)
		want := err == nil && u.String() == strings.ToLower(id)
		if got := rydes.ValidateID(id) == nil; got != want {
			t.Fatalf("ValidateID(%q) accepts: %v, want %v", id, got, want)
		}
	})
}

func BenchmarkValidateID(b *testing.B) {
	id := rydes.NewID()
	b.ReportAllocs()
	for b.Loop() {
		if err := rydes.ValidateID(id); err != nil {
			b.Fatal(err)
		}
	}
}
