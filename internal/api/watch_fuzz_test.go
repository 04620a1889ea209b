package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wildrydes/rydes"
)

// FuzzResumeID checks how an event stream's resume point is parsed from
// Last-Event-ID (or ?after=): never a panic; accepted exactly when the
// value, without surrounding spaces, is a non-negative decimal int64 in
// ASCII digits; refused with a 400 naming the header (or parameter); and
// an event's id as eventFrame writes it parses back to its seq.
func FuzzResumeID(f *testing.F) {
	for _, s := range []string{"0", "1", "42", " 7 ", "007", "-1", "+1", "1e3", "0x10", "", " ",
		"9223372036854775807", "9223372036854775808", "99999999999999999999", "١٢", "1\t", "1,2", "abc"} {
		f.Add(s, true, int64(1))
		f.Add(s, false, int64(9223372036854775807))
	}
	f.Fuzz(func(t *testing.T, value string, header bool, seq int64) {
		r := httptest.NewRequest(http.MethodGet, "/v1/rfqs/x/events", nil)
		field := "after"
		if header {
			field = "Last-Event-ID"
			r.Header["Last-Event-Id"] = []string{value}
		} else {
			r.URL.RawQuery = "after=" + url.QueryEscape(value)
		}
		got, err := parseResume(r)

		trimmed := strings.TrimSpace(value)
		want, perr := strconv.ParseInt(trimmed, 10, 64)
		valid := perr == nil && trimmed != "" && allDigits(trimmed)
		switch {
		case valid && err != nil:
			t.Fatalf("%s %q refused: %v", field, value, err)
		case valid && got != want:
			t.Fatalf("%s %q parsed as %d, want %d", field, value, got, want)
		case !valid && err == nil:
			t.Fatalf("%s %q accepted as %d", field, value, got)
		case !valid:
			if rydes.ErrorCodeOf(err) != rydes.EINVALID || rydes.ErrorFieldOf(err) != field {
				t.Fatalf("%s %q: error %v does not name the field", field, value, err)
			}
			if p := problemOf(err, "/"); p.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Field != field {
				t.Fatalf("%s %q: problem %+v", field, value, p)
			}
		}
		if valid && got < 0 {
			t.Fatalf("negative resume point %d", got)
		}

		// Round trip: the id eventFrame writes resumes right after it.
		frame, err := eventFrame(rydes.Event{RFQID: rydes.NewID(), Seq: seq, Type: rydes.EventQuote, At: time.Unix(0, 0)})
		if err != nil {
			t.Fatalf("frame: %v", err)
		}
		line, _, _ := bytes.Cut(frame, []byte("\n"))
		id, ok := bytes.CutPrefix(line, []byte("id: "))
		if !ok {
			t.Fatalf("frame starts %q", line)
		}
		r = httptest.NewRequest(http.MethodGet, "/v1/rfqs/x/events", nil)
		r.Header.Set("Last-Event-ID", string(id))
		back, err := parseResume(r)
		switch {
		case seq >= 0 && (err != nil || back != seq):
			t.Fatalf("seq %d written as %q resumes at %d (%v)", seq, id, back, err)
		case seq < 0 && err == nil:
			t.Fatalf("negative seq %d written as %q accepted", seq, id)
		}
	})
}
