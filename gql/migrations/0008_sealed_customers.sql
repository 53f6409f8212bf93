-- 0008: personal data sealed with a key per customer (first of two steps). The keys' and
-- secrets' tables, and the columns the sealed values go to; `ordergraph migrate` then seals
-- every customer's name and e-mail in Python (gql/store/customers.py, seal_plain), and 0009
-- drops the plaintext columns.

create table if not exists customer_keys (
    customer_id uuid primary key constraint customer_keys_customer_fkey references customers,
    key         bytea not null constraint customer_keys_key_valid check (octet_length(key) = 32),
    created_at  timestamptz not null default now()
);

create table if not exists og_secrets (
    name  text primary key,
    value bytea not null
);
insert into og_secrets (name, value)
values ('email_index', uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
on conflict (name) do nothing;

alter table customers
    add column sealed_name bytea,
    add column sealed_email bytea,
    add column email_index bytea,
    add column forgotten_at timestamptz;
