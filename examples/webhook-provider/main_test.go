package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/auth"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/wire"
)

func TestAnswersSignedDeliveriesOnly(t *testing.T) {
	secret := auth.NewWebhookSecret()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	h := &handler{wh: wh, serves: []string{"frankfurt"}, price: rydes.Price{Amount: "42.00", Currency: "EUR"}, log: rydestest.Logger(t)}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	deliver := func(req rydes.ProviderRequest, tamper bool) (int, []byte) {
		body, err := json.Marshal(req)
		require.NoError(t, err)
		sig, err := wh.Sign("msg_1", time.Now(), body)
		require.NoError(t, err)
		if tamper {
			body = bytes.Replace(body, []byte("Frankfurt"), []byte("Frankfort"), 1)
		}
		r, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		require.NoError(t, err)
		r.Header.Set("webhook-id", "msg_1")
		r.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		r.Header.Set("webhook-signature", sig)
		resp, err := http.DefaultClient.Do(r)
		require.NoError(t, err)
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, err = buf.ReadFrom(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, buf.Bytes()
	}

	id := rydes.NewID()
	status, body := deliver(rydes.ProviderRequest{RFQID: id, From: "Frankfurt", To: "Las Vegas"}, false)
	require.Equal(t, http.StatusOK, status)
	a, err := wire.DecodeReply("p", id, body, time.Now())
	require.NoError(t, err, "rydes accepts the answer: %s", body)
	require.Equal(t, rydes.AnswerQuote, a.Kind)

	status, body = deliver(rydes.ProviderRequest{RFQID: id, From: "Berlin", To: "Las Vegas"}, false)
	require.Equal(t, http.StatusOK, status)
	a, err = wire.DecodeReply("p", id, body, time.Now())
	require.NoError(t, err)
	require.Equal(t, rydes.AnswerDecline, a.Kind)

	status, _ = deliver(rydes.ProviderRequest{RFQID: id, From: "Frankfurt", To: "Las Vegas"}, true)
	require.Equal(t, http.StatusUnauthorized, status, "a tampered delivery is refused")
}
