from decimal import Decimal

from orders.pending import PendingBook, Reservation
from orders.types import AccountId, Side, TransferId

A = AccountId("A")


def reservation(transfer: str, cash: str, *, side=Side.BUY, quantity="10", currency="USD"):
    return Reservation(
        TransferId(transfer), A, currency, Decimal(cash), "AAPL", side, Decimal(quantity)
    )


def test_reservations_sum_per_currency_and_side():
    book = PendingBook(ttl_ns=100)
    book.reserve(reservation("t1", "1000"), 0)
    book.reserve(reservation("t2", "500", side=Side.SELL, quantity="3"), 0)
    book.reserve(Reservation(TransferId("t3"), A, "EUR", Decimal(7)), 0)  # a withdrawal

    assert book.cash(A, "USD", 1) == Decimal(1500)
    assert book.cash(A, "EUR", 1) == Decimal(7)
    assert book.quantity(A, "AAPL", Side.BUY, 1) == Decimal(10)
    assert book.quantity(A, "AAPL", Side.SELL, 1) == Decimal(3)


def test_release_removes_a_reservation_once():
    book = PendingBook(ttl_ns=100)
    book.reserve(reservation("t1", "1000"), 0)

    first, second = book.release(TransferId("t1")), book.release(TransferId("t1"))

    assert (first, second) == (True, False)
    assert book.cash(A, "USD", 1) == 0
    assert len(book) == 0


def test_reservations_expire_after_the_ttl():
    book = PendingBook(ttl_ns=100)
    book.reserve(reservation("t1", "1000"), 0)
    book.reserve(reservation("t2", "1"), 50)

    assert book.cash(A, "USD", 99) == Decimal(1001)
    assert book.cash(A, "USD", 100) == Decimal(1)
    assert book.cash(A, "USD", 150) == 0


def test_reserving_a_transfer_again_replaces_it():
    book = PendingBook(ttl_ns=100)
    book.reserve(reservation("t1", "1000"), 0)
    book.reserve(reservation("t1", "10"), 0)

    assert book.cash(A, "USD", 0) == Decimal(10)
