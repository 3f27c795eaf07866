-- Rate-limit budgets of the apps' credentials (sdk.BudgetState as JSON),
-- shared by every host: each connector process takes from and reports to
-- them through the host (host/store/budgets.go), one short transaction with
-- the row locked per call, on the database's clock.
CREATE TABLE rate_budgets (
    key        text        PRIMARY KEY,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
