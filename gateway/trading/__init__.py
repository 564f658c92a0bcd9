"""The order path around the accounts: order entry, the ledger, and their events.

- ``config.py``: the gateway's settings mapped onto order entry's and the ledger's.
- ``accountview.py``: pre-trade risk's view of live accounts and prices.
- ``events.py``: ledger events into the accounts, the ``orders`` channel and order entry.
- ``kafkaevents.py``: those events from Kafka, when the ledger runs elsewhere.
- ``runtime.py``: building, starting and stopping the whole order path.
"""

__all__: list[str] = []
