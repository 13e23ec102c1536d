"""Chat fixtures: a small hand-written robotics book indexed with the real embedder into
the test's own store, and helpers to read an SSE stream over real HTTP."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ragsite.rag import providers
from ragsite.rag.types import Chunk, sha256_text

SITE = "https://book.example/docs"

# (path, title, heading, anchor, body): sections in the style of the test textbook.
SMALL_BOOK = [
    (
        "part-1/chapter-2-sensors.mdx",
        "Chapter 2: Sensors and Perception",
        "LiDAR",
        "lidar",
        "LiDAR (Light Detection and Ranging) measures distance by timing laser pulses that "
        "bounce off surfaces. A spinning LiDAR sweeps its beams around the robot and builds "
        "a 3D point cloud of the environment, accurate to a few centimetres, in any lighting.",
    ),
    (
        "part-1/chapter-2-sensors.mdx",
        "Chapter 2: Sensors and Perception",
        "LiDAR > Cost and trade-offs",
        "cost-and-trade-offs",
        "The main drawback of LiDAR is its price: a 3D spinning LiDAR costs several thousand "
        "dollars, while solid-state units are cheaper but see a narrower field of view. "
        "Budget humanoid projects often replace LiDAR with stereo depth cameras.",
    ),
    (
        "part-1/chapter-2-sensors.mdx",
        "Chapter 2: Sensors and Perception",
        "Inertial Measurement Units",
        "inertial-measurement-units",
        "An inertial measurement unit (IMU) combines accelerometers and gyroscopes to measure "
        "linear acceleration and angular velocity. Integrating gyroscope rates gives the "
        "robot's orientation, but the estimate drifts over time without correction.",
    ),
    (
        "part-1/chapter-2-sensors.mdx",
        "Chapter 2: Sensors and Perception",
        "Depth Cameras",
        "depth-cameras",
        "Stereo depth cameras such as the Intel RealSense compute depth from the disparity "
        "between two images. They are cheap and light, but their depth error grows with "
        "distance and they struggle on textureless walls.",
    ),
    (
        "part-1/chapter-3-state-estimation.mdx",
        "Chapter 3: State Estimation",
        "Kalman Filters",
        "kalman-filters",
        "The Kalman filter estimates a robot's state by alternating a prediction step, which "
        "propagates the state with a motion model, and an update step, which corrects it "
        "with a measurement weighted by the Kalman gain.",
    ),
    (
        "part-1/chapter-4-motion-planning.mdx",
        "Chapter 4: Motion Planning and Control",
        "PID Control",
        "pid-control",
        "A PID controller computes its command from the proportional, integral and "
        "derivative terms of the tracking error. Tuning the three gains trades response "
        "speed against overshoot and oscillation.",
    ),
    (
        "part-2/chapter-6-ros2.mdx",
        "Chapter 6: ROS 2 Architecture",
        "Nodes and Topics",
        "nodes-and-topics",
        "In ROS 2 a node is a process that performs one task. Nodes exchange messages by "
        "publishing and subscribing to named topics, using DDS as the middleware underneath.",
    ),
    (
        "part-3/chapter-9-kinematics.mdx",
        "Chapter 9: Kinematics and Dynamics",
        "Inverse Kinematics",
        "inverse-kinematics",
        "Inverse kinematics finds the joint angles that place a robot's end effector at a "
        "desired pose. Analytical solutions exist for simple arms; humanoids use numerical "
        "methods such as the Jacobian pseudo-inverse.",
    ),
    (
        "part-3/chapter-10-balance.mdx",
        "Chapter 10: Balance and Locomotion",
        "Zero Moment Point",
        "zero-moment-point",
        "A walking humanoid stays balanced while its zero moment point (ZMP) remains inside "
        "the support polygon formed by its feet. Walking pattern generators plan the centre "
        "of mass trajectory so that the ZMP follows a safe path.",
    ),
    (
        "part-4/chapter-14-hri.mdx",
        "Chapter 14: Human-Robot Interaction",
        "Safety",
        "safety",
        "Robots that share space with people must limit their speed and force near humans, "
        "monitor separation distance, and stop safely when contact is detected.",
    ),
]


def small_book_chunks() -> list[Chunk]:
    """The small book as chunks, with stable ids, breadcrumbs and published URLs."""
    chunks = []
    for position, (path, title, heading, anchor, body) in enumerate(SMALL_BOOK):
        text = f"{title} > {heading}\n\n{body}"
        content_hash = sha256_text(text)
        page = path.removesuffix(".mdx")
        chunks.append(
            Chunk(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, text)),
                text=text,
                body=body,
                title=title,
                heading=heading,
                path=path,
                url=f"{SITE}/{page}#{anchor}",
                position=position,
                content_hash=content_hash,
                token_count=len(body.split()),
            )
        )
    return chunks


@pytest.fixture(scope="session")
def small_book_index(embedder) -> tuple[list[Chunk], list[list[float]]]:
    """The small book's chunks and their real embeddings (computed once per session)."""
    chunks = small_book_chunks()
    return chunks, embedder.embed_sync([chunk.text for chunk in chunks])


@pytest.fixture
def small_book(small_book_index, settings):
    """The small book indexed in this test's store (what the providers and the live
    server use). Returns the chunks."""
    chunks, vectors = small_book_index
    store = providers.get_store()
    store.ensure_collection(dimension=len(vectors[0]))
    store.upsert(chunks, vectors)
    return chunks


# --- reading SSE over HTTP ---------------------------------------------------------------


@dataclass
class SSEEvent:
    """One event as a client parsed it off the wire."""

    event: str
    data: Any


@dataclass
class SSEReader:
    """Parses an SSE byte stream incrementally, the way EventSource does."""

    buffer: str = ""
    comments: list[str] = field(default_factory=list)

    def feed(self, text: str) -> list[SSEEvent]:
        """Add received text; return the events it completed."""
        self.buffer += text.replace("\r\n", "\n")
        events = []
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            name, data_lines = "message", []
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data_lines.append(line[5:].removeprefix(" "))
            if data_lines:
                events.append(SSEEvent(name, json.loads("\n".join(data_lines))))
        return events


async def read_events(response: httpx.Response) -> list[SSEEvent]:
    """Read a whole streamed response into events."""
    reader = SSEReader()
    events: list[SSEEvent] = []
    async for text in response.aiter_text():
        events.extend(reader.feed(text))
    return events


async def chat_events(base_url: str, body: dict[str, Any]) -> tuple[httpx.Response, list[SSEEvent]]:
    """POST /api/chat and return the response and its events."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream("POST", "/api/chat", json=body) as response,
    ):
        events = await read_events(response)
    return response, events


def by_name(events: list[SSEEvent]) -> dict[str, list[Any]]:
    """Group event data by event name."""
    grouped: dict[str, list[Any]] = {}
    for event in events:
        grouped.setdefault(event.event, []).append(event.data)
    return grouped


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the process cache: start every test with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
