package testdb_test

import (
	"context"
	"testing"

	"github.com/synchron-io/synchron/sdk/testdb"
)

func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testdb.Open(t), testdb.Open(t)
	if _, err := a.ExecContext(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatalf("create table in a: %v", err)
	}
	var n int
	if err := b.GetContext(ctx, &n, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"); err != nil {
		t.Fatalf("query b: %v", err)
	}
	if n != 0 {
		t.Fatalf("table created in database a is visible in database b")
	}
	if err := a.GetContext(ctx, &n, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"); err != nil {
		t.Fatalf("query a: %v", err)
	}
	if n != 1 {
		t.Fatalf("table missing in database a: count %d", n)
	}
}
