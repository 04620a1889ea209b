// Command nats-provider is a partner ride provider that answers rydes's
// requests for quotes over NATS with the Go provider SDK. Use it as the
// starting point of your own.
//
// It quotes a fare from a simple rule, a base fare plus a fare per extra
// passenger, and declines requests for more passengers than its cars take
// or that go nowhere:
//
//	RYDES_NATS_PASSWORD=rydes_np_... nats-provider \
//	    -nats-url nats://rydes.example.com:4223 -provider unicorn-express
//
// When rydes's broker requires TLS (rydes serve --nats-tls-cert), use its
// tls:// URL; if its certificate comes from a private certificate
// authority, name that authority's certificate (PEM) with -ca:
//
//	nats-provider -nats-url tls://rydes.example.com:4223 -ca rydes-ca.pem ...
//
// Every flag can also be set with an environment variable: -nats-url with
// RYDES_NATS_URL, -provider with RYDES_PROVIDER_ID, -base-fare with
// RYDES_BASE_FARE, -ca with RYDES_CA, and so on. The NATS password is read only from
// RYDES_NATS_PASSWORD, so that it does not show in the process list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wildrydes/rydes"
	"github.com/wildrydes/rydes/provider"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats-provider:", err)
		os.Exit(1)
	}
}

// config is the provider's configuration.
type config struct {
	NATSURL string
	// CAFile, if set, is a PEM file of the certificate authorities trusted
	// for the broker's TLS certificate instead of the system's; it turns
	// TLS on.
	CAFile   string
	ID       string
	Password string
	Rule     rule
	Logger   *slog.Logger
	// ready, if set, is called once the provider is connected and about to
	// take requests.
	ready func()
}

// rule prices a ride: BaseFare for the first passenger, PerPassenger for
// each other one, in Currency, with cents as the unit. Requests for more
// than MaxPassengers, or from a place to itself, are declined.
type rule struct {
	BaseFareCents     int64
	PerPassengerCents int64
	Currency          string
	MaxPassengers     int
	ETA               time.Duration
}

// answer is the rule's reply to req.
func (r rule) answer(req rydes.ProviderRequest) provider.Reply {
	passengers := max(req.Passengers, 1)
	if passengers > r.MaxPassengers {
		return provider.Decline(fmt.Sprintf("our cars take at most %d passengers", r.MaxPassengers))
	}
	if strings.EqualFold(strings.TrimSpace(req.From), strings.TrimSpace(req.To)) {
		return provider.Decline("pickup and destination are the same place")
	}
	cents := r.BaseFareCents + int64(passengers-1)*r.PerPassengerCents
	price := rydes.Price{Amount: fmt.Sprintf("%d.%02d", cents/100, cents%100), Currency: r.Currency}
	return provider.Quote(price, provider.WithETA(r.ETA))
}

// run is the whole program; main only calls it.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg)
}

// parseConfig reads the flags, then the environment for every flag not
// given.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("nats-provider", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       config
		baseFare  = fs.String("base-fare", "20.00", "fare of a ride for one passenger")
		perPerson = fs.String("per-passenger", "5.00", "fare for each passenger after the first")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
	)
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "rydes's NATS URL, e.g. nats://rydes.example.com:4223 (required)")
	fs.StringVar(&cfg.CAFile, "ca", "", "PEM file of the certificate authority of rydes's broker, if private (turns TLS on)")
	fs.StringVar(&cfg.ID, "provider", "", "your provider id, as registered with rydes (required)")
	fs.StringVar(&cfg.Rule.Currency, "currency", "EUR", "ISO 4217 currency of the fares")
	fs.IntVar(&cfg.Rule.MaxPassengers, "max-passengers", 4, "most passengers a car takes")
	fs.DurationVar(&cfg.Rule.ETA, "eta", 5*time.Minute, "how long after the pickup time a car can be there")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if given[f.Name] || getenv(env) == "" || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, getenv(env)); err != nil {
			envErr = fmt.Errorf("%s: %w", env, err)
		}
	})
	if envErr != nil {
		return config{}, envErr
	}
	cfg.Password = getenv("RYDES_NATS_PASSWORD")

	switch {
	case cfg.NATSURL == "":
		return config{}, errors.New("-nats-url (or RYDES_NATS_URL) is required")
	case cfg.ID == "":
		return config{}, errors.New("-provider (or RYDES_PROVIDER_ID) is required")
	case cfg.Password == "":
		return config{}, errors.New("RYDES_NATS_PASSWORD is required: the NATS password rydes issued the provider")
	case cfg.Rule.MaxPassengers < 1:
		return config{}, errors.New("-max-passengers must be at least 1")
	}
	var err error
	if cfg.Rule.BaseFareCents, err = parseCents(*baseFare); err != nil {
		return config{}, fmt.Errorf("-base-fare: %w", err)
	}
	if cfg.Rule.PerPassengerCents, err = parseCents(*perPerson); err != nil {
		return config{}, fmt.Errorf("-per-passenger: %w", err)
	}
	if err := (rydes.Price{Amount: "1", Currency: cfg.Rule.Currency}).Validate(); err != nil {
		return config{}, fmt.Errorf("-currency: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return config{}, fmt.Errorf("-log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cfg, nil
}

// envName is the environment variable of a flag: RYDES_ and the flag's name
// in upper snake case; -provider is RYDES_PROVIDER_ID.
func envName(flagName string) string {
	if flagName == "provider" {
		return "RYDES_PROVIDER_ID"
	}
	return "RYDES_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseCents parses a non-negative amount with at most two decimals, such
// as "20", "4.5" or "19.99", into cents.
func parseCents(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 {
		return 0, fmt.Errorf("%q has more than two decimals", s)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err := strconv.ParseUint(whole, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an amount such as 19.99", s)
	}
	f, err := strconv.ParseUint(frac, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not an amount such as 19.99", s)
	}
	return int64(w)*100 + int64(f), nil
}

// serve connects to rydes and answers requests until ctx is done.
func serve(ctx context.Context, cfg config) error {
	log := cfg.Logger.With("provider", cfg.ID)
	opts := []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from rydes; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to rydes", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// Permission violations end up here: a wrong provider id, or a
			// connection without the provider's inbox prefix.
			log.Error("NATS error", "err", err)
		}),
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	nc, err := provider.Connect(cfg.NATSURL, cfg.ID, cfg.Password, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()

	p, err := provider.New(provider.Config{Conn: nc, ID: cfg.ID, Logger: log})
	if err != nil {
		return err
	}
	log.Info("taking requests", "url", nc.ConnectedUrlRedacted())
	if cfg.ready != nil {
		cfg.ready()
	}
	err = p.Run(ctx, func(ctx context.Context, req rydes.ProviderRequest) (provider.Reply, error) {
		reply := cfg.Rule.answer(req)
		log.Info("request", "rfq", req.RFQID, "from", req.From, "to", req.To, "passengers", req.Passengers)
		return reply, nil
	})
	if err != nil {
		return fmt.Errorf("provider %s stopped: %w", cfg.ID, err)
	}
	log.Info("stopped")
	return nil
}
