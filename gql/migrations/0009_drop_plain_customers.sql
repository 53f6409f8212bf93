-- 0009: every customer is sealed (0008 and `migrate`'s sealing): the plaintext columns go,
-- and the sealed ones take their names; e-mails stay unique through their blind index.

drop index if exists customers_email_key;
alter table customers drop column name, drop column email;
alter table customers rename column sealed_name to name;
alter table customers rename column sealed_email to email;
alter table customers
    alter column name set not null,
    alter column email set not null,
    add constraint customers_email_index_valid check (octet_length(email_index) = 32),
    add constraint customers_forgotten check ((forgotten_at is null) = (email_index is not null)),
    add constraint customers_sealed_size check (octet_length(name) between 29 and 828
                                                and octet_length(email) between 33 and 1308);
create unique index if not exists customers_email_index_key on customers (email_index);
