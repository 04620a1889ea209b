// Command webhook-provider is an example rydes partner that receives ride
// requests as webhooks: it checks each delivery's Standard Webhooks
// signature with the secret rydes gave at registration, and answers in the
// response body with a quote for rides from the places it serves and a
// decline otherwise.
//
//	RYDES_WEBHOOK_SECRET=whsec_... go run ./examples/webhook-provider --listen 127.0.0.1:9090
//
// Register it with:
//
//	rydes providers add unicorn-hooks --kind webhook --webhook-url http://127.0.0.1:9090/rides
//
// (a loopback URL needs rydes serve --webhook-allow-private, or --demo).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wildrydes/rydes"
)

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-provider:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("webhook-provider", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9090", "address to listen on")
	secret := fs.String("secret", getenv("RYDES_WEBHOOK_SECRET"), "the webhook signing secret rydes gave (whsec_...); or RYDES_WEBHOOK_SECRET")
	serves := fs.String("serves", "", "comma-separated pickup places quoted for; empty quotes everything")
	price := fs.String("price", "42.00", "price quoted")
	currency := fs.String("currency", "EUR", "ISO 4217 currency of the price")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("the webhook secret is required (--secret or RYDES_WEBHOOK_SECRET)")
	}
	wh, err := standardwebhooks.NewWebhook(*secret)
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	h := &handler{wh: wh, price: rydes.Price{Amount: *price, Currency: *currency}, log: slog.Default()}
	for _, p := range strings.Split(*serves, ",") {
		if p = strings.TrimSpace(p); p != "" {
			h.serves = append(h.serves, strings.ToLower(p))
		}
	}
	if err := h.price.Validate(); err != nil {
		return err
	}
	slog.Info("listening for ride requests", "addr", *listen)
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

type handler struct {
	wh     *standardwebhooks.Webhook
	serves []string
	price  rydes.Price
	log    *slog.Logger
}

// answer is the body rydes reads back: a quote or a decline.
type answer struct {
	Kind       string       `json:"kind"`
	Price      *rydes.Price `json:"price,omitempty"`
	ETASeconds int          `json:"eta_seconds,omitempty"`
	Reason     string       `json:"reason,omitempty"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	// Never act on a delivery whose signature does not check out: anyone can
	// POST to this URL.
	if err := h.wh.Verify(body, r.Header); err != nil {
		h.log.Warn("refused a delivery with a bad signature", "err", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req rydes.ProviderRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad request body", http.StatusBadRequest)
		return
	}
	a := answer{Kind: "quote", Price: &h.price, ETASeconds: 600}
	if len(h.serves) > 0 && !slices.Contains(h.serves, strings.ToLower(req.From)) {
		a = answer{Kind: "decline", Reason: "we do not serve " + req.From}
	}
	h.log.Info("answering", "rfq", req.RFQID, "webhook_id", r.Header.Get("webhook-id"), "kind", a.Kind)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
}
