-- The journal, materialised balances, sagas, outbox, inbox and dead letters (SQLite).
-- Amounts are integers (minor units or quantity units); exact decimals are TEXT.

CREATE TABLE clients (
    account_id TEXT PRIMARY KEY,
    base_currency TEXT NOT NULL,
    opened_batch INTEGER NOT NULL
);

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner TEXT,
    asset TEXT NOT NULL,
    floor INTEGER,
    balance INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    CHECK (pending >= 0),
    CHECK (floor IS NULL OR balance - pending >= floor)
);
CREATE INDEX accounts_owner ON accounts (owner);

CREATE TABLE chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    batch_no INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_event_seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    inbox_cursor INTEGER NOT NULL
);
INSERT INTO chain_head VALUES (1, 0, 0, 0, zeroblob(32), 0);

CREATE TABLE batches (
    batch_no INTEGER PRIMARY KEY,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL
);

CREATE TABLE transactions (
    seq INTEGER PRIMARY KEY,
    transfer_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    batch_no INTEGER NOT NULL,
    ts_posted INTEGER NOT NULL
);

-- Entries are staged here, then moved into `entries` by the trigger that
-- inserts their transaction, once it has checked that they balance.
CREATE TABLE entry_stage (
    seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    asset TEXT NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (seq, n)
);

CREATE TABLE entries (
    seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    asset TEXT NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (seq, n)
);
CREATE INDEX entries_account ON entries (account_id, seq);

CREATE TRIGGER transactions_balance BEFORE INSERT ON transactions
BEGIN
    SELECT RAISE(ABORT, 'ledger: a transaction needs staged entries')
    WHERE (SELECT count(*) FROM entry_stage WHERE seq = NEW.seq) < 2;
    SELECT RAISE(ABORT, 'ledger: unbalanced transaction')
    WHERE EXISTS (
        SELECT 1 FROM entry_stage WHERE seq = NEW.seq GROUP BY asset HAVING sum(amount) <> 0
    );
    INSERT INTO entries (seq, n, account_id, asset, amount)
        SELECT seq, n, account_id, asset, amount FROM entry_stage WHERE seq = NEW.seq;
    DELETE FROM entry_stage WHERE seq = NEW.seq;
END;

CREATE TRIGGER entries_from_stage_only BEFORE INSERT ON entries
WHEN NOT EXISTS (
        SELECT 1 FROM entry_stage s
        WHERE s.seq = NEW.seq AND s.n = NEW.n AND s.account_id = NEW.account_id
          AND s.asset = NEW.asset AND s.amount = NEW.amount
    )
    OR EXISTS (SELECT 1 FROM transactions t WHERE t.seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'ledger: entries are written only with their balanced transaction');
END;

CREATE TABLE holds (
    batch_no INTEGER NOT NULL,
    n INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    transfer_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (batch_no, n)
);
CREATE INDEX holds_account ON holds (account_id);

CREATE TABLE commands (
    transfer_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    account_id TEXT NOT NULL,
    wire TEXT NOT NULL,
    batch_no INTEGER NOT NULL
);

CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    transfer_id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    order_type TEXT NOT NULL,
    limit_price TEXT,
    time_in_force TEXT NOT NULL,
    client_order_id TEXT,
    status TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    average_price TEXT,
    reason TEXT,
    ts_accepted INTEGER NOT NULL,
    ts_updated INTEGER NOT NULL,
    worst_price TEXT,
    hold_account TEXT,
    hold_minor INTEGER NOT NULL,
    fill_count INTEGER NOT NULL,
    notional TEXT NOT NULL
);
CREATE INDEX orders_account ON orders (account_id, ts_accepted DESC, order_id DESC);
CREATE INDEX orders_open ON orders (status)
    WHERE status IN ('accepted', 'reserved', 'partially_filled');

CREATE TABLE payments (
    payment_id TEXT PRIMARY KEY,
    transfer_id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    ts_accepted INTEGER NOT NULL,
    ts_updated INTEGER NOT NULL
);
CREATE INDEX payments_pending ON payments (status) WHERE status = 'pending';

CREATE TABLE transitions (
    batch_no INTEGER NOT NULL,
    n INTEGER NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    cause TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    PRIMARY KEY (batch_no, n)
);
CREATE INDEX transitions_subject ON transitions (subject);

CREATE TABLE fills (
    fill_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    order_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    quantity_units INTEGER NOT NULL,
    price TEXT NOT NULL,
    notional_minor INTEGER NOT NULL,
    fee_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    realised_pnl TEXT NOT NULL,
    ts_event INTEGER NOT NULL
);
CREATE INDEX fills_account ON fills (account_id, ts_event);

CREATE TABLE positions (
    account_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    quantity_units INTEGER NOT NULL,
    avg_cost TEXT NOT NULL,
    realised_pnl TEXT NOT NULL,
    commission TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (account_id, symbol)
);

CREATE TABLE outbox (
    event_seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ledger_seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    sent_ns INTEGER
);
CREATE INDEX outbox_unsent ON outbox (event_seq) WHERE sent_ns IS NULL;
CREATE INDEX outbox_account ON outbox (account_id, event_seq);

CREATE TABLE inbox (
    inbox_id INTEGER PRIMARY KEY AUTOINCREMENT,
    wire TEXT NOT NULL,
    ts_ns INTEGER NOT NULL
);

CREATE TABLE dead_letters (
    dlq_id INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id TEXT,
    account_id TEXT,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    redriven_ns INTEGER,
    published_ns INTEGER
);

CREATE TABLE dlq_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dlq_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts_ns INTEGER NOT NULL
);

-- Append-only: the journal and the history are never updated or deleted.
CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions
BEGIN SELECT RAISE(ABORT, 'ledger: transactions are append-only'); END;
CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
BEGIN SELECT RAISE(ABORT, 'ledger: transactions are append-only'); END;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger: entries are append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger: entries are append-only'); END;
CREATE TRIGGER batches_no_update BEFORE UPDATE ON batches
BEGIN SELECT RAISE(ABORT, 'ledger: batches are append-only'); END;
CREATE TRIGGER batches_no_delete BEFORE DELETE ON batches
BEGIN SELECT RAISE(ABORT, 'ledger: batches are append-only'); END;
CREATE TRIGGER holds_no_update BEFORE UPDATE ON holds
BEGIN SELECT RAISE(ABORT, 'ledger: holds are append-only'); END;
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
BEGIN SELECT RAISE(ABORT, 'ledger: holds are append-only'); END;
CREATE TRIGGER fills_no_update BEFORE UPDATE ON fills
BEGIN SELECT RAISE(ABORT, 'ledger: fills are append-only'); END;
CREATE TRIGGER fills_no_delete BEFORE DELETE ON fills
BEGIN SELECT RAISE(ABORT, 'ledger: fills are append-only'); END;
CREATE TRIGGER transitions_no_update BEFORE UPDATE ON transitions
BEGIN SELECT RAISE(ABORT, 'ledger: transitions are append-only'); END;
CREATE TRIGGER transitions_no_delete BEFORE DELETE ON transitions
BEGIN SELECT RAISE(ABORT, 'ledger: transitions are append-only'); END;
CREATE TRIGGER commands_no_update BEFORE UPDATE ON commands
BEGIN SELECT RAISE(ABORT, 'ledger: commands are append-only'); END;
CREATE TRIGGER commands_no_delete BEFORE DELETE ON commands
BEGIN SELECT RAISE(ABORT, 'ledger: commands are append-only'); END;
CREATE TRIGGER dlq_audit_no_update BEFORE UPDATE ON dlq_audit
BEGIN SELECT RAISE(ABORT, 'ledger: the dead-letter audit log is append-only'); END;
CREATE TRIGGER dlq_audit_no_delete BEFORE DELETE ON dlq_audit
BEGIN SELECT RAISE(ABORT, 'ledger: the dead-letter audit log is append-only'); END;
