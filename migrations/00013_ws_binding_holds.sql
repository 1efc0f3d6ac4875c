-- Which socket holds each websocket binding token (store.BindingHolds): one
-- token never binds two live sockets, whichever instances they are on. A
-- hold is a lease judged by the database's clock; expired rows are removed by
-- the next hold taken.

-- +goose Up
CREATE TABLE ws_binding_holds (
    token_id   text        PRIMARY KEY,
    holder     text        NOT NULL,
    hold_until timestamptz NOT NULL
);
CREATE INDEX ws_binding_holds_until ON ws_binding_holds (hold_until);

-- +goose Down
DROP TABLE ws_binding_holds;
