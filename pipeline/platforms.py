"""The platforms a sequence can be delivered for (`platforms: [tiktok, reels]`): each one's
size, longest film, the part of the frame its interface leaves visible, encoder settings and
loudness. docs/delivery.md cites where each figure comes from, and says which ones no
platform publishes (there the choice is the cautious one: a wider margin, -14 LUFS).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.nodes import Encoding, SafeArea

# Every platform below re-encodes what it is given; none publishes a loudness target. The
# streaming services that do normalise (YouTube among them, measured) play at -14 LUFS and
# turn louder films down, never quieter ones up: -14 is the loudest that loses nothing.
PLATFORM_LOUDNESS = -14.0
# YouTube's recommended upload bitrate for 1080p SDR (8 Mbps at 24 to 30 fps, 12 Mbps at 48
# to 60); Meta asks for 8 Mbps at 1080p; TikTok publishes a floor (at least 516 kbps).
VIDEO_KBPS = 8000
HIGH_FPS_KBPS = 12000
# AAC-LC stereo: YouTube recommends 384 kbps; Meta asks for 128 kbps or more; TikTok says
# nothing. 192 kbps is what every other film of this tool carries.
YOUTUBE_AUDIO_KBPS = 384
AUDIO_KBPS = 192


@dataclass(frozen=True)
class Platform:
    name: str  # as a storyboard names it
    title: str  # as people do
    width: int
    height: int
    longest: float  # seconds: a longer film is refused
    safe: SafeArea  # the part of the frame its interface does not cover
    audio_kbps: int = AUDIO_KBPS
    gop_seconds: float = 0.0  # keyframe spacing, in seconds of film; 0: x264's choice
    bframes: int = -1  # consecutive B-frames; -1: x264's choice
    loudness: float = PLATFORM_LOUDNESS  # integrated LUFS

    def encoding(self, fps: int) -> Encoding:
        """Its encoder settings for a film of `fps` frames a second."""
        return Encoding(
            video_kbps=HIGH_FPS_KBPS if fps > 30 else VIDEO_KBPS,
            audio_kbps=self.audio_kbps,
            profile="high",
            gop=max(round(self.gop_seconds * fps), 1) if self.gop_seconds else 0,
            bframes=self.bframes,
        )


PLATFORMS: dict[str, Platform] = {
    platform.name: platform
    for platform in (
        # TikTok Ads Manager (In-Feed): 9:16, 5 to 60 s, at least 516 kbps. Its safe zone is
        # published as overlay files only: these margins are the widest measured from them
        # (top 250, bottom 440, right 170 px of 1080x1920); no left margin: Meta's 6%.
        Platform(
            "tiktok",
            "TikTok",
            1080,
            1920,
            60.0,
            SafeArea(left=0.06, top=0.13, right=0.16, bottom=0.23),
        ),
        # Meta's Reels: 9:16; keep 14% of the top, 35% of the bottom and 6% of each side free
        # of text. Instagram takes Reels of up to 3 minutes (January 2025). Meta's Reels
        # publishing asks for closed GOPs of 2 to 5 seconds.
        Platform(
            "reels",
            "Instagram Reels",
            1080,
            1920,
            180.0,
            SafeArea(left=0.06, top=0.14, right=0.06, bottom=0.35),
            gop_seconds=2.0,
        ),
        # YouTube Shorts: square or vertical, up to 3 minutes (October 2024). YouTube
        # publishes no safe zone: its title, channel and subscribe button are measured to
        # cover the bottom quarter; for the rest (the tabs above, the column of buttons at
        # the right) TikTok's margins, the same layout.
        Platform(
            "shorts",
            "YouTube Shorts",
            1080,
            1920,
            180.0,
            SafeArea(left=0.06, top=0.13, right=0.16, bottom=0.25),
            # YouTube's recommended upload encoding (Shorts are uploaded the same way): 2
            # consecutive B-frames, closed GOPs of half the frame rate, AAC-LC 384 kbps.
            audio_kbps=YOUTUBE_AUDIO_KBPS,
            gop_seconds=0.5,
            bframes=2,
        ),
        # YouTube: 16:9, up to 12 hours (15 minutes for an account not verified); nothing is
        # drawn over the picture as it plays: the title-safe margin.
        Platform(
            "youtube",
            "YouTube",
            1920,
            1080,
            12 * 3600.0,
            SafeArea(),
            audio_kbps=YOUTUBE_AUDIO_KBPS,
            gop_seconds=0.5,
            bframes=2,
        ),
        # Meta's Feed: 4:5, 1 s to 241 minutes; the name and buttons are drawn above and
        # below the video, not over it: the title-safe margin.
        Platform("meta-feed", "Meta Feed", 1080, 1350, 241 * 60.0, SafeArea()),
    )
}
