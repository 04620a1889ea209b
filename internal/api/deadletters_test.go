package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/api"
	"github.com/wildrydes/rydes/internal/store"
)

// deadLetterPageJSON is a page of dead letters as a client reads it.
type deadLetterPageJSON struct {
	DeadLetters []struct {
		ID         int64  `json:"id"`
		Provider   string `json:"provider"`
		RFQID      string `json:"rfq_id"`
		ReplayedAt string `json:"replayed_at"`
	} `json:"dead_letters"`
	NextBefore *int64 `json:"next_before"`
}

func (h *harness) deadLetters(t *testing.T, query string) deadLetterPageJSON {
	t.Helper()
	resp, b := h.admin(t, http.MethodGet, "/v1/dead-letters"+query, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var page deadLetterPageJSON
	require.NoError(t, json.Unmarshal(b, &page))
	return page
}

func ids(page deadLetterPageJSON) []int64 {
	out := []int64{}
	for _, dl := range page.DeadLetters {
		out = append(out, dl.ID)
	}
	return out
}

func TestListDeadLetters(t *testing.T) {
	h := newHarness(t)
	resp, b := h.admin(t, http.MethodGet, "/v1/dead-letters", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	assert.JSONEq(t, `{"dead_letters":[]}`, string(b), "an empty list, not null, and no next page")
	assert.Equal(t, store.ListDeadLettersParams{Limit: api.DefaultDeadLetterLimit + 1}, *h.reg.lastDeadLetterQuery(),
		"the default page, and one more to see whether there is a next")

	for i := range 7 {
		h.reg.addDeadLetter([]string{"hookA", "hookB"}[i%2]) // A: 1,3,5,7 B: 2,4,6
	}
	page := h.deadLetters(t, "")
	assert.Equal(t, []int64{7, 6, 5, 4, 3, 2, 1}, ids(page), "newest first")
	assert.Nil(t, page.NextBefore)

	// Paging.
	page = h.deadLetters(t, "?limit=3")
	assert.Equal(t, []int64{7, 6, 5}, ids(page))
	require.NotNil(t, page.NextBefore)
	assert.Equal(t, int64(5), *page.NextBefore)
	assert.Equal(t, store.ListDeadLettersParams{Limit: 4}, *h.reg.lastDeadLetterQuery())

	page = h.deadLetters(t, fmt.Sprintf("?limit=3&before=%d", *page.NextBefore))
	assert.Equal(t, []int64{4, 3, 2}, ids(page))
	require.NotNil(t, page.NextBefore)
	assert.Equal(t, store.ListDeadLettersParams{BeforeID: 5, Limit: 4}, *h.reg.lastDeadLetterQuery())

	page = h.deadLetters(t, fmt.Sprintf("?limit=3&before=%d", *page.NextBefore))
	assert.Equal(t, []int64{1}, ids(page))
	assert.Nil(t, page.NextBefore, "the last page")

	// Exactly a page: no next.
	page = h.deadLetters(t, "?limit=7")
	assert.Len(t, page.DeadLetters, 7)
	assert.Nil(t, page.NextBefore)

	// One provider's.
	page = h.deadLetters(t, "?provider=hookB&limit=2")
	assert.Equal(t, []int64{6, 4}, ids(page))
	require.NotNil(t, page.NextBefore)
	page = h.deadLetters(t, fmt.Sprintf("?provider=hookB&limit=2&before=%d", *page.NextBefore))
	assert.Equal(t, []int64{2}, ids(page))
	assert.Nil(t, page.NextBefore)
	for _, dl := range page.DeadLetters {
		assert.Equal(t, "hookB", dl.Provider)
	}

	page = h.deadLetters(t, "?limit=500")
	assert.Len(t, page.DeadLetters, 7)
	assert.Equal(t, 501, h.reg.lastDeadLetterQuery().Limit)
}

func TestListDeadLettersBadQuery(t *testing.T) {
	h := newHarness(t)
	h.reg.addDeadLetter("hookA")
	for query, field := range map[string]string{
		"?limit=0":                     "limit",
		"?limit=501":                   "limit",
		"?limit=-1":                    "limit",
		"?limit=ten":                   "limit",
		"?limit=":                      "limit",
		"?limit=%2B5":                  "limit",
		"?limit=1&limit=2":             "limit",
		"?before=0":                    "before",
		"?before=-5":                   "before",
		"?before=x":                    "before",
		"?before=99999999999999999999": "before",
		"?provider=a.b":                "provider",
		"?provider=":                   "provider",
		"?rfq=" + rydes.NewID():        "rfq",
		"?limit=5&colour=pink":         "colour",
	} {
		t.Run(query, func(t *testing.T) {
			calls := h.reg.callCount("DeadLetters")
			resp, b := h.admin(t, http.MethodGet, "/v1/dead-letters"+query, "")
			p := requireProblem(t, resp, b, http.StatusBadRequest, field)
			assert.Equal(t, api.ProblemTypeBase+"invalid", p.Type)
			assert.Equal(t, calls, h.reg.callCount("DeadLetters"), "the registry is not asked")
		})
	}
}

func TestReplayDeadLetter(t *testing.T) {
	h := newHarness(t)
	id := h.reg.addDeadLetter("hookA")
	closed := h.reg.addDeadLetter("hookA")
	gone := h.reg.addDeadLetter("hookGone")
	h.reg.setReplayErr(closed, rydes.Errorf(rydes.ECONFLICT, "rfq is complete: nothing to replay"))
	h.reg.setReplayErr(gone, rydes.Errorf(rydes.EGONE, "provider hookGone no longer exists"))

	resp, b := h.admin(t, http.MethodPost, fmt.Sprintf("/v1/dead-letters/%d/replay", id), "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	var dl struct {
		ID         int64  `json:"id"`
		Provider   string `json:"provider"`
		Attempts   int    `json:"attempts"`
		LastStatus int    `json:"last_status"`
		ReplayedAt string `json:"replayed_at"`
		Request    struct {
			RFQID string `json:"rfq_id"`
		} `json:"request"`
	}
	require.NoError(t, json.Unmarshal(b, &dl))
	assert.Equal(t, id, dl.ID)
	assert.Equal(t, "hookA", dl.Provider)
	assert.Equal(t, 503, dl.LastStatus)
	assert.Equal(t, "2030-07-01T10:30:00Z", dl.ReplayedAt)
	assert.NoError(t, rydes.ValidateID(dl.Request.RFQID))

	changes := h.reg.changeCount()
	resp, b = h.admin(t, http.MethodPost, fmt.Sprintf("/v1/dead-letters/%d/replay", closed), "")
	p := requireProblem(t, resp, b, http.StatusConflict, "")
	assert.Equal(t, api.ProblemTypeBase+"conflict", p.Type)
	resp, b = h.admin(t, http.MethodPost, fmt.Sprintf("/v1/dead-letters/%d/replay", gone), "")
	p = requireProblem(t, resp, b, http.StatusGone, "")
	assert.Equal(t, api.ProblemTypeBase+"gone", p.Type)
	resp, b = h.admin(t, http.MethodPost, "/v1/dead-letters/999/replay", "")
	requireProblem(t, resp, b, http.StatusNotFound, "")

	for _, bad := range []string{"abc", "0", "-1", "007", "1.5", "99999999999999999999"} {
		resp, b = h.admin(t, http.MethodPost, "/v1/dead-letters/"+bad+"/replay", "")
		requireProblem(t, resp, b, http.StatusBadRequest, "id")
	}
	resp, b = h.send(t, http.MethodPost, fmt.Sprintf("/v1/dead-letters/%d/replay", id), "application/json", "Bearer "+testAdminKey, []byte(`{"now":true}`))
	requireProblem(t, resp, b, http.StatusBadRequest, "")
	resp, b = h.admin(t, http.MethodGet, fmt.Sprintf("/v1/dead-letters/%d/replay", id), "")
	requireProblem(t, resp, b, http.StatusMethodNotAllowed, "")
	assert.Equal(t, changes, h.reg.changeCount(), "nothing else was replayed")
}
