"""The Python client against a real local cluster (started by client_test.sh): submit, watch,
history, budget, and errors that carry the server's code."""

import io
import os
import unittest
from contextlib import redirect_stderr

import grpc

from dpfleet import Client, Credentials, DpfleetError

STEPS = 30


def small_job(**overrides):
    spec = dict(dataset="fashion-mnist", model="mlp", expected_batch_size=600, steps=STEPS,
                clip_norm=1.0, noise_multiplier=1.0, delta=1e-5, num_workers=2, seed=7,
                evaluate_every_steps=10,
                optimizer={"type": "DP_SGD", "learning_rate": 0.5, "momentum": 0.9})
    spec.update(overrides)
    return spec


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = Client.from_env()
        cls.client.register_dataset("fashion-mnist", epsilon=100.0, delta=1e-5)
        tls = os.path.join(os.environ["DPFLEET_TEST_STATE_DIR"], "tls")
        cls.reader = Client(os.environ["DPFLEET_COORDINATOR"], os.environ["DPFLEET_ACCOUNTANT"],
                            Credentials(os.path.join(tls, "ca.pem"), os.path.join(tls, "reader.pem"),
                                        os.path.join(tls, "reader.key")))

    def test_a_job_runs_to_the_end_and_its_history_and_charge_are_readable(self):
        job = self.client.submit(**small_job())
        self.assertEqual(job["state"], "QUEUED")
        self.assertEqual(job["total_steps"], STEPS)
        self.assertIsInstance(job["total_steps"], int)
        with redirect_stderr(io.StringIO()) as bar:  # tqdm draws on stderr.
            events = list(self.client.watch(job["job_id"]))
        self.assertEqual(events[-1]["state"], "SUCCEEDED", events[-1]["error"])
        self.assertIn(f"{STEPS}/{STEPS}", bar.getvalue())
        steps_seen = [event["progress"]["step"] for event in events]
        self.assertEqual(steps_seen, sorted(steps_seen))
        final = self.client.get(job["job_id"])
        self.assertGreater(final["result"]["test_accuracy"], 0.5)

        history = self.client.history(job["job_id"])
        self.assertEqual([record["step"] for record in history], list(range(1, STEPS + 1)))
        self.assertAlmostEqual(history[-1]["epsilon_spent"], final["result"]["epsilon_spent"],
                               places=9)
        self.assertGreater(history[-1]["loss"], 0.0)  # The owner's diagnostics.
        evaluations = self.client.evaluations(job["job_id"])
        self.assertEqual([e["step"] for e in evaluations], [10, 20, 30])
        self.assertEqual(evaluations[-1]["test_accuracy"], final["result"]["test_accuracy"])
        # A reader sees the history without the diagnostics of the private sample.
        seen = self.reader.history(job["job_id"])
        self.assertEqual(seen[-1]["loss"], 0.0)
        self.assertEqual(seen[-1]["batch_size"], 0)
        self.assertEqual(seen[-1]["epsilon_spent"], history[-1]["epsilon_spent"])

        budget = self.client.budget("fashion-mnist")
        self.assertGreater(budget["epsilon_committed"], 0.0)
        self.assertEqual(budget["open_reservations"], 0)
        self.assertAlmostEqual(budget["epsilon_budget"], 100.0)
        self.assertIn(job["job_id"], [j["job_id"] for j in self.client.jobs()])

    def test_errors_carry_the_servers_code_and_message(self):
        with self.assertRaises(DpfleetError) as bad:
            self.client.submit(**small_job(clip_norm=-1.0))
        self.assertEqual(bad.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("clip_norm", bad.exception.message)
        with self.assertRaises(DpfleetError) as missing:
            self.client.history("job-404")
        self.assertEqual(missing.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(DpfleetError) as unknown:
            self.client.budget("no-such-dataset")
        self.assertEqual(unknown.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(DpfleetError) as denied:  # A reader may not submit.
            self.reader.submit(**small_job())
        self.assertEqual(denied.exception.code, grpc.StatusCode.PERMISSION_DENIED)
        with self.assertRaises(DpfleetError) as too_much:
            self.client.submit(**small_job(steps=10**7))
        self.assertEqual(too_much.exception.code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        with self.assertRaises(ValueError) as typo:
            self.client.submit(**small_job(clip_nrom=1.0))
        self.assertIn("clip_nrom", str(typo.exception))


if __name__ == "__main__":
    unittest.main()
