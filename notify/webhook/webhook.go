// Package webhook posts rekey events as JSON to any HTTP endpoint.
package webhook

import (
	"net/http"
	"time"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/notify"
)

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

// New returns a Notifier that posts a Payload to url (a secret: it may
// embed a token). A nil client uses a 10s timeout.
func New(url secret.Value, client *http.Client) *notify.JSONPoster {
	return &notify.JSONPoster{Name: "webhook", URL: url, Client: client, Body: func(ev notify.Event) any {
		return Payload{
			Event: string(ev.Kind), Credential: ev.Credential, RotationID: ev.RotationID, Phase: ev.Phase,
			Error: ev.Error, Time: ev.Time.UTC(), OldKeyID: ev.OldKeyID, NewKeyID: ev.NewKeyID,
		}
	}}
}
