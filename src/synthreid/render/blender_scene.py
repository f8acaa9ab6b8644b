"""The Blender scene: one per process, rebuilt per character, updated per image.

The character's meshes are created once per character; each image only moves their vertices,
the camera and the sun, then renders inside the crop border.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import bpy
import numpy as np

from synthreid.body.character import CharacterGeometry, PosedCharacter
from synthreid.errors import RenderError
from synthreid.render.crop import Crop, PinholeCamera
from synthreid.render.materials import (
    REST_ATTRIBUTE,
    garment_material,
    image_material,
    new_material,
)
from synthreid.scene.backgrounds import cubemap_faces
from synthreid.scene.config import RenderConfig
from synthreid.scene.spec import BystanderSpec, CharacterSpec, ImageSpec, RoomSpec

PERSON_TAG = "synthreid_person"
SKY_SCALE = 0.035


def _mesh_object(name: str, vertices: np.ndarray, faces: np.ndarray, material,
                 uvs: np.ndarray | None = None):
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    if uvs is not None:
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", uvs.astype(np.float32).ravel())
    mesh.update()
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _set_vertices(objects: dict[str, object], posed: PosedCharacter) -> None:
    for name, vertices in posed.vertices.items():
        mesh = objects[name].data
        mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
        mesh.update()


def _remove(objects: list) -> None:
    """Mesh objects gone with their meshes and materials."""
    for obj in objects:
        mesh, materials = obj.data, list(obj.data.materials)
        bpy.data.objects.remove(obj)
        bpy.data.meshes.remove(mesh)
        for material in materials:
            bpy.data.materials.remove(material)


def _prop_mesh(kind: str, size: tuple[float, float, float],
               segments: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A closed pole (cylinder) or box standing on z = 0, centred on the z axis."""
    if kind == "pole":
        radius, _, height = size
        angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
        vertices = np.concatenate([np.c_[ring, np.zeros(segments)],
                                   np.c_[ring, np.full(segments, height)],
                                   [[0, 0, 0], [0, 0, height]]])
        faces = []
        for i in range(segments):
            j = (i + 1) % segments
            faces += [[i, j, segments + j], [i, segments + j, segments + i],
                      [2 * segments, j, i], [2 * segments + 1, segments + i, segments + j]]
        return vertices, np.array(faces)
    if kind == "bicycle":
        return _bicycle_mesh(*size)
    width, depth, height = size
    corners = np.array([[x, y, z] for z in (0, height) for y in (-depth / 2, depth / 2)
                        for x in (-width / 2, width / 2)])
    return corners, np.array(BOX_FACES)


# A box's triangles, corners numbered x fastest, then y, then z.
BOX_FACES = [[0, 2, 3], [0, 3, 1], [4, 5, 7], [4, 7, 6], [0, 1, 5], [0, 5, 4],
             [2, 6, 7], [2, 7, 3], [0, 4, 6], [0, 6, 2], [1, 3, 7], [1, 7, 5]]


def _bar(start, end, thickness: float) -> np.ndarray:
    """The 8 corners of a square bar from `start` to `end` (in BOX_FACES' order)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    along = (end - start) / np.linalg.norm(end - start)
    side = np.cross(along, [0.0, 0.0, 1.0] if abs(along[2]) < 0.9 else [1.0, 0.0, 0.0])
    side = side / np.linalg.norm(side) * thickness / 2
    up = np.cross(along, side)
    return np.array([point + sx * side + sy * up for point in (start, end)
                     for sy in (-1, 1) for sx in (-1, 1)])


def _bicycle_mesh(length: float, width: float, height: float,
                  rim_segments: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A bicycle of bars standing on z = 0, along x: two spoked wheels, a diamond frame, fork,
    seat and handlebar (`width`: the tubes' thickness). It hides a person only partly, as a
    real one does."""
    r = 0.19 * length  # wheel radius
    rear, front = np.array([-(length / 2 - r), 0, r]), np.array([length / 2 - r, 0, r])
    crank = np.array([-0.05 * length, 0, 0.9 * r])
    seat = np.array([-0.2 * length, 0, 0.85 * height])
    head = np.array([0.27 * length, 0, 0.88 * height])
    fork_top = np.array([0.29 * length, 0, 0.65 * height])
    bar = np.array([0.25 * length, 0, height])
    bars = [(rear, crank), (rear, seat), (crank, seat), (seat, head), (crank, fork_top),
            (head, fork_top), (fork_top, front), (head, bar),
            (bar + [0, -0.3, 0], bar + [0, 0.3, 0]),  # handlebar
            (seat + [-0.1, 0, 0.02], seat + [0.12, 0, 0.02])]  # saddle
    angles = np.linspace(0, 2 * np.pi, rim_segments + 1)
    for hub in (rear, front):
        rim = hub + r * np.stack([np.cos(angles), np.zeros_like(angles), np.sin(angles)], axis=1)
        bars += list(zip(rim[:-1], rim[1:]))
        bars += [(hub, rim[i]) for i in range(0, rim_segments, rim_segments // 4)]  # spokes
    vertices = np.concatenate([_bar(a, b, width) for a, b in bars])
    faces = np.concatenate([np.array(BOX_FACES) + 8 * i for i in range(len(bars))])
    return vertices, faces


@contextlib.contextmanager
def _quiet_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _configure_device(scene, device: str) -> str:
    if device == "cpu":
        scene.cycles.device = "CPU"
        return "cpu"
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend
            scene.cycles.device = "GPU"
            return backend.lower()
    if device == "gpu":
        raise RenderError("render.device is 'gpu' but Cycles finds no GPU on this machine")
    scene.cycles.device = "CPU"
    return "cpu"


class BlenderScene:
    """Blender's state is global to the process: creating a scene resets it, so only the newest
    BlenderScene of a process may be used."""

    _newest: BlenderScene | None = None

    def __init__(self, settings: RenderConfig) -> None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        BlenderScene._newest = self
        self.settings = settings
        scene = self.scene = bpy.context.scene
        scene.view_settings.view_transform = "Standard"  # spec colours come out as specified
        scene.render.image_settings.file_format = "PNG"
        scene.render.use_border = True
        scene.render.use_crop_to_border = True
        scene.render.resolution_percentage = 100
        for stamp in ("date", "time", "render_time", "frame", "camera", "scene", "filename",
                      "memory", "hostname"):
            setattr(scene.render, f"use_stamp_{stamp}", False)  # same seed, same file bytes
        if settings.threads:
            scene.render.threads_mode = "FIXED"
            scene.render.threads = settings.threads
        self.device = "cpu"
        if settings.engine == "cycles":
            self.device = _configure_device(scene, settings.device)
            scene.cycles.samples = settings.samples
            scene.cycles.use_adaptive_sampling = False
            scene.cycles.use_denoising = settings.denoise
            scene.cycles.max_bounces = 4
            scene.cycles.caustics_reflective = scene.cycles.caustics_refractive = False
        self.world = bpy.data.worlds.new("world")
        self.world.color = (0.5, 0.5, 0.5)
        scene.world = self.world
        camera = bpy.data.cameras.new("camera")
        camera.sensor_fit = "AUTO"
        self.camera = bpy.data.objects.new("camera", camera)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera
        sun = bpy.data.lights.new("sun", "SUN")
        sun.angle = math.radians(3)
        self.sun = bpy.data.objects.new("sun", sun)
        scene.collection.objects.link(self.sun)
        self.lamps: list[object] = []  # point lamps, made as images ask for them
        self.props: list[object] = []  # this image's occluders
        self.person: dict[str, object] = {}
        self.crowd: list[dict[str, object]] = []  # each bystander's parts
        self.room: list[object] = []

    # --- per character -------------------------------------------------------------------
    @property
    def _bystander_objects(self) -> list[object]:
        return [obj for objects in self.crowd for obj in objects.values()]

    def _clear(self) -> None:
        _remove(list(self.person.values()) + self._bystander_objects + self.room + self.props)
        self.props, self.crowd = [], []
        for image in list(bpy.data.images):
            if image.users == 0:
                bpy.data.images.remove(image)
        self.person, self.room = {}, []

    def load_character(self, spec: CharacterSpec, geometry: CharacterGeometry,
                       crowd: Sequence[CharacterGeometry] = ()) -> None:
        """The person, its room and its bystanders (`crowd`: the geometry of each of
        spec.crowd), who stay hidden until an image places them."""
        if BlenderScene._newest is not self:
            raise RenderError("this Blender scene was replaced by a newer one in this process; "
                              "use one Renderer per process")
        self._clear()
        self.person = self._body_objects(spec, geometry, "")
        for index, (bystander, shape) in enumerate(zip(spec.crowd or (), crowd)):
            objects = self._body_objects(bystander, shape, f"crowd{index}_")
            for obj in objects.values():
                obj.hide_render = obj.hide_viewport = True
            self.crowd.append(objects)
        self._build_room(spec.room)

    @staticmethod
    def _body_objects(spec: CharacterSpec, geometry: CharacterGeometry,
                      prefix: str) -> dict[str, object]:
        garments = {g.kind: g for g in spec.garments}
        objects = {}
        for part in geometry.parts:
            kind, _, detail = part.material.partition(":")
            if kind == "skin":
                material, _ = new_material("skin", spec.body.skin_tone, roughness=0.55)
            elif kind == "garment":
                material = garment_material(part.name, garments[detail])
            elif kind == "hair":
                material, _ = new_material("hair", spec.hair.colour, roughness=0.5)
            else:
                material, _ = new_material(part.name, spec.accessories[int(detail)].colour, 0.6)
            obj = _mesh_object(prefix + part.name, part.vertices, part.faces, material)
            if not prefix:
                obj[PERSON_TAG] = True
            rest = obj.data.attributes.new(REST_ATTRIBUTE, "FLOAT_VECTOR", "POINT")
            rest.data.foreach_set("vector", part.vertices.astype(np.float32).ravel())
            objects[part.name] = obj
        return objects

    def _build_room(self, room: RoomSpec) -> None:
        sx, sy, sz = (s / 2 for s in room.size_m)
        quad = np.array([[0, 1, 2], [0, 2, 3]])
        uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 0], [1, 1], [0, 1]], dtype=float)
        # Each face's corners, ordered so the image's bottom edge meets the floor. No ceiling:
        # the camera looks down or level at the person, and sky light must come in.
        faces = {
            "px": [(sx, -sy, 0), (sx, sy, 0), (sx, sy, 2 * sz), (sx, -sy, 2 * sz)],
            "nx": [(-sx, sy, 0), (-sx, -sy, 0), (-sx, -sy, 2 * sz), (-sx, sy, 2 * sz)],
            "py": [(sx, sy, 0), (-sx, sy, 0), (-sx, sy, 2 * sz), (sx, sy, 2 * sz)],
            "ny": [(-sx, -sy, 0), (sx, -sy, 0), (sx, -sy, 2 * sz), (-sx, -sy, 2 * sz)],
            "nz": [(-sx, -sy, 0), (sx, -sy, 0), (sx, sy, 0), (-sx, sy, 0)],
        }
        if room.kind == "equirect":
            self._equirect(room.background)
            faces = {"nz": faces["nz"]}  # a floor to stand on, under the panorama
        # A backplate photo goes behind the render afterwards: the render keeps only the
        # person and, on a floor that catches shadows only, the person's shadow.
        self.scene.render.film_transparent = room.kind == "backplate"
        if room.kind == "backplate":
            faces = {"nz": faces["nz"]}
        images = cubemap_faces(room.background) if room.kind == "cubemap" else {}
        colours = dict(zip(("px", "nx", "py", "ny"), room.wall_colours))
        colours["nz"] = room.floor_colour
        for name, corners in faces.items():
            if name in images:
                material = image_material(f"room_{name}", str(images[name]))
            else:
                material, _ = new_material(f"room_{name}", colours[name], roughness=0.9)
            obj = _mesh_object(f"room_{name}", np.array(corners, dtype=float), quad, material, uvs)
            obj.visible_shadow = False  # an open-topped room: the sun and sky light it inside
            obj.is_shadow_catcher = room.kind == "backplate"
            # Workbench has no shadow catchers: its previews show the person on the photo alone.
            obj.hide_render = room.kind == "backplate" and self.settings.engine != "cycles"
            self.room.append(obj)

    def _equirect(self, path: str) -> None:
        world = self.world
        if not world.node_tree:
            world.use_nodes = True
        tree = world.node_tree
        tree.nodes.clear()
        texture = tree.nodes.new("ShaderNodeTexEnvironment")
        texture.image = bpy.data.images.load(str(Path(path).expanduser()), check_existing=True)
        background = tree.nodes.new("ShaderNodeBackground")
        output = tree.nodes.new("ShaderNodeOutputWorld")
        tree.links.new(texture.outputs["Color"], background.inputs["Color"])
        tree.links.new(background.outputs["Background"], output.inputs["Surface"])

    # --- per image -----------------------------------------------------------------------
    def pose(self, posed: PosedCharacter) -> None:
        _set_vertices(self.person, posed)

    def place_crowd(self, placed: dict[int, tuple[BystanderSpec, PosedCharacter]],
                    target) -> None:
        """This image's bystanders (by index into the crowd), posed, standing at their offsets
        from `target` (the person); the others hidden."""
        for index, objects in enumerate(self.crowd):
            shown = index in placed
            for obj in objects.values():
                obj.hide_render = obj.hide_viewport = not shown
            if shown:
                where, posed = placed[index]
                _set_vertices(objects, posed)
                low, high = posed.bounds()
                centre = (low + high) / 2  # stood with its own centre on the offset point
                for obj in objects.values():
                    obj.location = (target[0] + where.x - centre[0],
                                    target[1] + where.y - centre[1], 0.0)

    def light(self, image: ImageSpec, target=(0.0, 0.0, 0.0)) -> None:
        """The image's sun, sky and lamps; lamps stand relative to `target`, the person."""
        self.sun.rotation_euler = (math.pi / 2 - image.sun_elevation, 0.0, image.sun_azimuth)
        self.sun.data.energy = image.sun_strength
        self.sun.data.color = image.sun_colour or (1.0, 1.0, 1.0)
        lamps = image.lamps or []
        while len(self.lamps) < len(lamps):
            data = bpy.data.lights.new(f"lamp{len(self.lamps)}", "POINT")
            data.shadow_soft_size = 0.25
            lamp = bpy.data.objects.new(data.name, data)
            self.scene.collection.objects.link(lamp)
            self.lamps.append(lamp)
        for index, lamp in enumerate(self.lamps):
            spec = lamps[index] if index < len(lamps) else None
            lamp.data.energy = spec.power_w if spec else 0.0  # unused lamps stay dark
            if spec:
                lamp.data.color = spec.colour
                lamp.location = (target[0] + spec.distance_m * math.cos(spec.azimuth),
                                 target[1] + spec.distance_m * math.sin(spec.azimuth),
                                 target[2] + spec.height_m)
        nodes = self.world.node_tree.nodes if self.world.node_tree else {}
        if "Environment Texture" in nodes:  # a photo background: its own light, scaled
            nodes["Background"].inputs["Strength"].default_value = image.ambient
        elif image.sky_haze is not None:
            self._sky(image)
        else:
            tint = image.sun_colour or (1.0, 1.0, 1.0)  # a plain sky takes the sun's colour
            self.world.color = tuple(image.ambient * 0.5 * c for c in tint)

    def _sky(self, image: ImageSpec) -> None:
        """Blender's multiple-scattering daylight sky, the sun where the sun light stands. It
        lights the room from above; its own sun disc is left out (the sun light casts the
        shadows)."""
        world = self.world
        if not world.node_tree or "Sky Texture" not in world.node_tree.nodes:
            world.use_nodes = True
            tree = world.node_tree
            tree.nodes.clear()
            sky = tree.nodes.new("ShaderNodeTexSky")
            sky.sky_type, sky.sun_disc = "MULTIPLE_SCATTERING", False
            background = tree.nodes.new("ShaderNodeBackground")
            output = tree.nodes.new("ShaderNodeOutputWorld")
            tree.links.new(sky.outputs["Color"], background.inputs["Color"])
            tree.links.new(background.outputs["Background"], output.inputs["Surface"])
        nodes = world.node_tree.nodes
        sky = nodes["Sky Texture"]
        # The sun light stands toward (sin a, -cos a) at azimuth a; the sky's sun at rotation r
        # toward (sin r, cos r) (both measured with renders).
        sky.sun_elevation, sky.sun_rotation = image.sun_elevation, math.pi - image.sun_azimuth
        sky.aerosol_density = image.sky_haze
        # The sky model is physically bright: this scale gives a grey card about the light of
        # the plain sky at the same `ambient` (measured at 20-60 degrees of sun elevation).
        nodes["Background"].inputs["Strength"].default_value = SKY_SCALE * image.ambient

    def place_props(self, props, target) -> None:
        """This image's occluders on the floor around `target` (the last image's go)."""
        _remove(self.props)
        self.props = []
        for index, prop in enumerate(props or []):
            vertices, faces = _prop_mesh(prop.kind, prop.size_m)
            material, _ = new_material(f"prop{index}", prop.colour, roughness=0.8)
            obj = _mesh_object(f"prop{index}", vertices, faces, material)
            obj.location = (target[0] + prop.x, target[1] + prop.y, 0.0)
            obj.rotation_euler = (0.0, 0.0, prop.heading)
            self.props.append(obj)

    def frame(self, camera: PinholeCamera, crop: Crop) -> None:
        self.camera.data.lens = camera.focal_mm
        self.camera.data.sensor_width = camera.sensor_mm
        self.camera.matrix_world = camera.camera_to_world().T.tolist()
        render = self.scene.render
        render.resolution_x = render.resolution_y = crop.resolution
        render.border_min_x, render.border_max_x, render.border_min_y, render.border_max_y = (
            crop.border())

    def render_rgb(self, path: Path, seed: int) -> None:
        scene = self.scene
        scene.render.engine = "CYCLES" if self.settings.engine == "cycles" else "BLENDER_WORKBENCH"
        if self.settings.engine == "cycles":
            scene.cycles.seed = seed
        else:
            scene.display.shading.light = "STUDIO"
            scene.display.shading.color_type = "TEXTURE"
            scene.display.render_aa = "FXAA"  # a preview: speed over edge quality
        # RGBA over a backplate: the renderer puts the photo behind it
        scene.render.image_settings.color_mode = "RGBA" if scene.render.film_transparent else "RGB"
        self._write(path)

    def render_mask(self, path: Path) -> None:
        """The person mask: a flat, unantialiased Workbench pass, person white on black."""
        scene = self.scene
        scene.render.engine = "BLENDER_WORKBENCH"
        shading = scene.display.shading
        shading.light, shading.color_type = "FLAT", "OBJECT"
        shading.background_type = "VIEWPORT"
        shading.background_color = (0.0, 0.0, 0.0)
        scene.display.render_aa = "OFF"
        for obj in self.person.values():
            obj.color = (1.0, 1.0, 1.0, 1.0)
        # Room, props and bystanders are black: in front of the person, they hide it.
        for obj in self.room + self.props + self._bystander_objects:
            obj.color = (0.0, 0.0, 0.0, 1.0)
        scene.render.image_settings.color_mode = "BW"
        # A final Workbench render shows the world's colour wherever no object is (a
        # panorama's sky, the space around a backplate's person): black, for this pass only.
        sky, self.world.color = tuple(self.world.color), (0.0, 0.0, 0.0)
        transparent, scene.render.film_transparent = scene.render.film_transparent, False
        try:
            self._write(path)
        finally:
            scene.render.film_transparent, self.world.color = transparent, sky

    def _write(self, path: Path) -> None:
        self.scene.render.filepath = str(path)
        with _quiet_stdout():  # Blender prints a line per saved image; keep progress bars clean
            bpy.ops.render.render(write_still=True)
        if not path.exists():
            raise RenderError(f"Blender did not write {path}")

    def visible(self, eye: np.ndarray, points: np.ndarray, inside_body_m: float = 0.12) -> np.ndarray:
        """Whether each point is seen from `eye`: nothing on the way except the surface just
        around it (keypoints are joints, inside the body, up to `inside_body_m` deep)."""
        depsgraph = bpy.context.evaluated_depsgraph_get()
        seen = []
        for point in points:
            ray = point - eye
            distance = float(np.linalg.norm(ray))
            hit, location, *_ = self.scene.ray_cast(depsgraph, eye.tolist(),
                                                     (ray / distance).tolist(), distance=distance)
            seen.append(not hit or np.linalg.norm(np.array(location) - eye) > distance - inside_body_m)
        return np.array(seen)
