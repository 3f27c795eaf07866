-- The app's id of a webhook delivery (Shopify's X-Shopify-Webhook-Id), so
-- that a redelivery of a delivery already processed is dropped by every
-- host. Only processed deliveries (accepted, runs queued: error = '') hold
-- their id in the unique index: a delivery that failed is processed again
-- when the app retries it.
ALTER TABLE webhook_events ADD COLUMN delivery_id text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX webhook_events_delivery ON webhook_events (connection_id, delivery_id)
    WHERE delivery_id <> '' AND error = '';
