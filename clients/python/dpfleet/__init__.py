"""Python client of dpfleet: submit differentially private training jobs, watch them, read their
history and the budgets they spend, over the same mutually authenticated TLS as dpctl.

    from dpfleet import Client
    client = Client.from_env()   # DPFLEET_COORDINATOR, DPFLEET_ACCOUNTANT, DPFLEET_TLS_CA/_CERT/_KEY
    job = client.submit(dataset="fashion-mnist", model="mlp", expected_batch_size=600, steps=100,
                        clip_norm=1.0, target_epsilon=2.0, delta=1e-5, num_workers=2)
    for snapshot in client.watch(job["job_id"]):
        pass
    print(client.history(job["job_id"])[-1], client.budget("fashion-mnist"))
"""

from dpfleet.client import Client, Credentials, DpfleetError

__all__ = ["Client", "Credentials", "DpfleetError"]
