package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/internal/bus"
	"github.com/wildrydes/rydes/internal/rydestest"
	"github.com/wildrydes/rydes/internal/store"
	"github.com/wildrydes/rydes/provider"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig([]string{"-provider", "p1", "-base-fare", "12.5"}, env(map[string]string{
		"RYDES_NATS_URL": "nats://127.0.0.1:4223", "RYDES_NATS_PASSWORD": "pw",
		"RYDES_PROVIDER_ID": "ignored", "RYDES_MAX_PASSENGERS": "6",
		"RYDES_CA": "/etc/rydes/ca.pem",
	}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "nats://127.0.0.1:4223", cfg.NATSURL)
	require.Equal(t, "p1", cfg.ID, "a flag wins over the environment")
	require.Equal(t, "pw", cfg.Password)
	require.Equal(t, "/etc/rydes/ca.pem", cfg.CAFile)
	require.Equal(t, rule{BaseFareCents: 1250, PerPassengerCents: 500, Currency: "EUR", MaxPassengers: 6, ETA: 5 * time.Minute}, cfg.Rule)

	full := map[string]string{"RYDES_NATS_URL": "nats://x", "RYDES_PROVIDER_ID": "p1", "RYDES_NATS_PASSWORD": "pw"}
	for _, tc := range []struct {
		args []string
		drop string
		want string
	}{
		{nil, "RYDES_NATS_URL", "-nats-url"},
		{nil, "RYDES_PROVIDER_ID", "-provider"},
		{nil, "RYDES_NATS_PASSWORD", "RYDES_NATS_PASSWORD"},
		{[]string{"-base-fare", "1.234"}, "", "-base-fare"},
		{[]string{"-per-passenger", "-1"}, "", "-per-passenger"},
		{[]string{"-currency", "XYZ"}, "", "-currency"},
		{[]string{"-max-passengers", "0"}, "", "-max-passengers"},
	} {
		e := map[string]string{}
		for k, v := range full {
			if k != tc.drop {
				e[k] = v
			}
		}
		_, err := parseConfig(tc.args, env(e), io.Discard)
		require.ErrorContains(t, err, tc.want)
	}
	_, err = parseConfig([]string{"-h"}, env(full), io.Discard)
	require.ErrorIs(t, err, flag.ErrHelp)
	_, err = parseConfig(nil, env(map[string]string{"RYDES_NATS_URL": "nats://x", "RYDES_PROVIDER_ID": "p1", "RYDES_NATS_PASSWORD": "pw", "RYDES_ETA": "soon"}), io.Discard)
	require.ErrorContains(t, err, "RYDES_ETA")
}

func TestRule(t *testing.T) {
	r := rule{BaseFareCents: 2000, PerPassengerCents: 550, Currency: "EUR", MaxPassengers: 4, ETA: time.Minute}
	quote := func(amount string) provider.Reply {
		return provider.Quote(rydes.Price{Amount: amount, Currency: "EUR"}, provider.WithETA(time.Minute))
	}
	for _, tc := range []struct {
		req  rydes.ProviderRequest
		want provider.Reply
	}{
		{rydes.ProviderRequest{From: "Castle", To: "Rainbow"}, quote("20.00")},
		{rydes.ProviderRequest{From: "Castle", To: "Rainbow", Passengers: 1}, quote("20.00")},
		{rydes.ProviderRequest{From: "Castle", To: "Rainbow", Passengers: 4}, quote("36.50")},
		{rydes.ProviderRequest{From: "Castle", To: "Rainbow", Passengers: 5}, provider.Decline("our cars take at most 4 passengers")},
		{rydes.ProviderRequest{From: "Castle", To: " castle "}, provider.Decline("pickup and destination are the same place")},
	} {
		require.Equal(t, tc.want, r.answer(tc.req), "%+v", tc.req)
	}
}

type passwords map[string]string

func (p passwords) CheckNATSPassword(_ context.Context, user, password string) (bool, error) {
	want, ok := p[user]
	return ok && want == password, nil
}

// TestServe runs the example against an embedded rydes broker that
// authenticates providers: it quotes one request and declines another.
func TestServe(t *testing.T) { testServe(t, false) }

// TestServeTLS does the same over TLS, trusting the broker's private CA
// with -ca.
func TestServeTLS(t *testing.T) { testServe(t, true) }

func testServe(t *testing.T, withTLS bool) {
	ctx := rydestest.Context(t)
	embCfg := bus.EmbeddedConfig{
		StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Providers: passwords{"unicorn-express": "pw"}, Logger: rydestest.Logger(t),
	}
	var extra []string
	if withTLS {
		caFile, certFile, keyFile := rydestest.Certs(t)
		embCfg.TLSCertFile, embCfg.TLSKeyFile = certFile, keyFile
		extra = []string{"-ca", caFile}
	}
	emb, err := bus.StartEmbedded(ctx, embCfg)
	require.NoError(t, err)
	if withTLS {
		require.True(t, strings.HasPrefix(emb.ClientURL(), "tls://"), emb.ClientURL())
	}
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	b, err := bus.New(ctx, nc, bus.Config{Logger: rydestest.Logger(t)})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.NoError(t, b.EnsureProviderQueue(ctx, "unicorn-express"))

	cfg, err := parseConfig(append([]string{"-nats-url", emb.ClientURL(), "-provider", "unicorn-express", "-log-level", "debug"}, extra...),
		env(map[string]string{"RYDES_NATS_PASSWORD": "pw"}), io.Discard)
	require.NoError(t, err)
	cfg.Logger = rydestest.Logger(t)
	ready := make(chan struct{})
	cfg.ready = func() { close(ready) }
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- serve(serveCtx, cfg) }()
	select {
	case <-ready:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}

	// rydes's answer service, staging nothing: it keeps what it receives.
	answers := make(chan bus.Inbound, 2)
	gctx, stopGather := context.WithCancel(ctx)
	gathered := make(chan error, 1)
	answering := make(chan struct{})
	go func() {
		gathered <- b.ServeAnswers(gctx, func(_ context.Context, in bus.Inbound) rydes.AnswerReceipt {
			answers <- in
			return rydes.AnswerReceipt{Outcome: rydes.OutcomeStaged, RFQStatus: rydes.StatusOpen}
		}, bus.ServeOptions{Ready: func() { close(answering) }})
	}()
	select {
	case <-answering:
	case err := <-gathered:
		t.Fatalf("serve answers: %v", err)
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	reqs := []rydes.ProviderRequest{
		{RFQID: rydes.NewID(), From: "Castle", To: "Rainbow", Passengers: 2, CreatedAt: now, Deadline: now.Add(time.Hour)},
		{RFQID: rydes.NewID(), From: "Castle", To: "Rainbow", Passengers: 9, CreatedAt: now, Deadline: now.Add(time.Hour)},
	}
	for i, req := range reqs {
		_, err := b.Publish(ctx, []store.OutboxMessage{{
			ID: int64(i + 1), Kind: store.OutboxDispatch, CreatedAt: now,
			Dispatch: &store.Dispatch{Providers: []string{"unicorn-express"}, Request: req},
		}})
		require.NoError(t, err)
	}

	got := map[string]rydes.Answer{}
	for range reqs {
		select {
		case in := <-answers:
			require.NoError(t, in.Err)
			got[in.Answer.RFQID] = in.Answer
		case <-ctx.Done():
			t.Fatal("timed out waiting for answers")
		}
	}
	require.Equal(t, rydes.AnswerQuote, got[reqs[0].RFQID].Kind)
	require.Equal(t, rydes.Price{Amount: "25.00", Currency: "EUR"}, got[reqs[0].RFQID].Price)
	require.Equal(t, "unicorn-express", got[reqs[0].RFQID].Provider)
	require.Equal(t, rydes.AnswerDecline, got[reqs[1].RFQID].Kind)

	stop()
	require.NoError(t, <-served)
	stopGather()
	require.NoError(t, <-gathered)
}

// TestServeTLSUntrusted checks that the example refuses a broker whose
// certificate it cannot verify: without -ca, and with -ca of another CA.
func TestServeTLSUntrusted(t *testing.T) {
	ctx := rydestest.Context(t)
	_, certFile, keyFile := rydestest.Certs(t)
	otherCA, _, _ := rydestest.Certs(t)
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{
		StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Providers: passwords{"p1": "pw"},
		TLSCertFile: certFile, TLSKeyFile: keyFile,
	})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	for _, args := range [][]string{nil, {"-ca", otherCA}} {
		err = run(ctx, append([]string{"-nats-url", emb.ClientURL(), "-provider", "p1"}, args...), env(map[string]string{"RYDES_NATS_PASSWORD": "pw"}), io.Discard)
		require.ErrorContains(t, err, "certificate signed by unknown authority", "args %q", args)
	}
	err = run(ctx, []string{"-nats-url", emb.ClientURL(), "-provider", "p1", "-ca", filepath.Join(t.TempDir(), "missing.pem")}, env(map[string]string{"RYDES_NATS_PASSWORD": "pw"}), io.Discard)
	require.ErrorContains(t, err, "missing.pem")
}

func TestServeRefused(t *testing.T) {
	ctx := rydestest.Context(t)
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Providers: passwords{}})
	require.NoError(t, err)
	t.Cleanup(emb.Shutdown)
	err = run(ctx, []string{"-nats-url", emb.ClientURL(), "-provider", "p1"}, env(map[string]string{"RYDES_NATS_PASSWORD": "s3cr3t-guess"}), io.Discard)
	require.ErrorContains(t, err, "refused the credentials")
	require.False(t, errors.Is(err, flag.ErrHelp))
	require.NotContains(t, err.Error(), "s3cr3t-guess", "the password is not in the error")
}
