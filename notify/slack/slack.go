// Package slack posts rekey events to a Slack incoming webhook.
package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/notify"
)

var _ notify.Notifier = (*Notifier)(nil)

// Notifier posts {"text": ...} to one incoming webhook URL.
type Notifier struct {
	url    secret.Value
	client *http.Client
}

// New returns a Notifier for the webhook URL (a secret: Slack webhook
// URLs are bearer credentials). A nil client uses a 10s timeout.
func New(url secret.Value, client *http.Client) *Notifier {
	return &Notifier{url: url, client: client}
}

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, ev notify.Event) error {
	body, err := json.Marshal(struct {
		Text string `json:"text"`
	}{Text: ev.Summary()})
	if err != nil {
		return fmt.Errorf("slack: encode: %w", err)
	}
	if err := notify.Post(ctx, n.client, n.url, body); err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	return nil
}
