// Package slack posts rekey events to a Slack incoming webhook.
package slack

import (
	"net/http"

	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/notify"
)

// New returns a Notifier that posts {"text": ...} to the incoming webhook
// URL (a secret: Slack webhook URLs are bearer credentials). A nil client
// uses a 10s timeout.
func New(url secret.Value, client *http.Client) *notify.JSONPoster {
	return &notify.JSONPoster{Name: "slack", URL: url, Client: client, Body: func(ev notify.Event) any {
		return struct {
			Text string `json:"text"`
		}{Text: ev.Summary()}
	}}
}
