// Package webhook posts rekey events as JSON to any HTTP endpoint.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/notify"
)

var _ notify.Notifier = (*Notifier)(nil)

// Payload is the JSON body of every request.
type Payload struct {
	Event      string    `json:"event"`
	Credential string    `json:"credential"`
	RotationID string    `json:"rotation_id"`
	Phase      string    `json:"phase"`
	Error      string    `json:"error"`
	Time       time.Time `json:"time"`
	OldKeyID   string    `json:"old_key_id"`
	NewKeyID   string    `json:"new_key_id"`
}

// Notifier posts a Payload to one URL.
type Notifier struct {
	url    secret.Value
	client *http.Client
}

// New returns a Notifier for url (a secret: it may embed a token). A nil
// client uses a 10s timeout.
func New(url secret.Value, client *http.Client) *Notifier {
	return &Notifier{url: url, client: client}
}

// Notify implements notify.Notifier.
func (n *Notifier) Notify(ctx context.Context, ev notify.Event) error {
	body, err := json.Marshal(Payload{
		Event: string(ev.Kind), Credential: ev.Credential, RotationID: ev.RotationID, Phase: ev.Phase,
		Error: ev.Error, Time: ev.Time.UTC(), OldKeyID: ev.OldKeyID, NewKeyID: ev.NewKeyID,
	})
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	if err := notify.Post(ctx, n.client, n.url, body); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}
