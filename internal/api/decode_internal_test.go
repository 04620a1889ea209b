package api

import "testing"

// TestLoneSurrogate checks the scan for \u escapes of unpaired UTF-16
// surrogates, which the JSON decoder would quietly turn into U+FFFD.
func TestLoneSurrogate(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"a":"plain"}`, false},
		{`{"a":"\u00e9\u4e2d"}`, false},
		{`{"a":"\ud83e\udd84"}`, false}, // a pair: 🦄
		{`{"a":"\uD83E\uDD84"}`, false},
		{`{"a":"\\ud800"}`, false}, // an escaped backslash, then text
		{`{"\\":"\\\\ud800"}`, false},
		{`{"a":"x","ud800":1}`, false},
		{`{"a":"\ud800"}`, true},
		{`{"a":"\udc00"}`, true},
		{`{"a":"\ud800x"}`, true},
		{`{"a":"\ud800\u0041"}`, true},
		{`{"a":"\ud800\ud800"}`, true},
		{`{"\ud800":"key"}`, true},
		{`{"a":"ok","b":"\udfff"}`, true},
		{`{"a":"\ud800`, true},
		{`{"a":"\u12`, false}, // malformed: the decoder says so
		{`{"a":"\`, false},
		{``, false},
	} {
		if got := loneSurrogate([]byte(tc.body)); got != tc.want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", tc.body, got, tc.want)
		}
	}
}
