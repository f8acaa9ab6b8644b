"""Blender materials: skin, plain and patterned garments, hair, accessories, room surfaces.

Garment patterns are procedural shader nodes evaluated on each vertex's rest-pose position (the
"rest" attribute), so a pattern is continuous across the whole garment (no UV seams to hide)
and moves with the cloth when the body is posed.
"""

from __future__ import annotations

import math

import bpy

from synthreid.scene.colours import srgb_to_linear
from synthreid.scene.spec import RGB, GarmentSpec

REST_ATTRIBUTE = "rest"


def _socket(sockets, name: str, kind: str | None = None):
    return next(s for s in sockets if s.name == name and (kind is None or s.type == kind))


def _rgba(colour: RGB) -> tuple[float, float, float, float]:
    return (*srgb_to_linear(colour), 1.0)


def new_material(name: str, colour: RGB, roughness: float = 0.7):
    """A Principled BSDF material; returns (material, BSDF node)."""
    material = bpy.data.materials.new(name)
    if not material.node_tree:  # Blender < 5 needs node trees switched on
        material.use_nodes = True
    material.diffuse_color = _rgba(colour)  # what Workbench shows
    nodes = material.node_tree.nodes
    nodes.clear()
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    bsdf.inputs["Base Color"].default_value = _rgba(colour)
    bsdf.inputs["Roughness"].default_value = roughness
    return material, bsdf


def _math(tree, operation: str, a, b=None):
    node = tree.nodes.new("ShaderNodeMath")
    node.operation = operation
    for i, value in enumerate((a, b)):
        if value is None:
            continue
        if isinstance(value, (int, float)):
            node.inputs[i].default_value = value
        else:
            tree.links.new(value, node.inputs[i])
    return node.outputs["Value"]


def _band(tree, position, direction: tuple[float, float, float], scale: float):
    """1 on every other band of width 1/(2 scale) m along `direction`, else 0."""
    dot = tree.nodes.new("ShaderNodeVectorMath")
    dot.operation = "DOT_PRODUCT"
    tree.links.new(position, dot.inputs[0])
    dot.inputs[1].default_value = direction
    phase = _math(tree, "FRACT", _math(tree, "MULTIPLY", dot.outputs["Value"], scale))
    return _math(tree, "GREATER_THAN", phase, 0.5)


def garment_material(name: str, garment: GarmentSpec):
    material, bsdf = new_material(name, garment.colour, roughness=0.85)
    texture = garment.texture
    if texture is None:
        return material
    tree = material.node_tree
    attribute = tree.nodes.new("ShaderNodeAttribute")
    attribute.attribute_type = "GEOMETRY"
    attribute.attribute_name = REST_ATTRIBUTE
    position = attribute.outputs["Vector"]
    if texture.family == "photo":
        _wrap_photo(tree, position, texture, bsdf)
        return material
    across = (math.cos(texture.angle), math.sin(texture.angle), 0.0)
    if texture.family == "stripes":
        direction = (0.0, 0.0, 1.0) if texture.angle < 0.3 else across
        factor = _band(tree, position, direction, texture.scale)
    elif texture.family == "plaid":
        factor = _math(tree, "MULTIPLY", _math(
            tree, "ADD", _band(tree, position, (0.0, 0.0, 1.0), texture.scale),
            _band(tree, position, across, texture.scale)), 0.5)
    elif texture.family == "checks":
        checker = tree.nodes.new("ShaderNodeTexChecker")
        checker.inputs["Scale"].default_value = texture.scale
        tree.links.new(position, checker.inputs["Vector"])
        factor = checker.outputs["Fac"]
    elif texture.family == "noise":  # camouflage-like blotches
        noise = tree.nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = texture.scale
        tree.links.new(position, noise.inputs["Vector"])
        factor = _math(tree, "GREATER_THAN", noise.outputs["Fac"], 0.5)
    else:  # dots
        voronoi = tree.nodes.new("ShaderNodeTexVoronoi")
        voronoi.inputs["Scale"].default_value = texture.scale
        tree.links.new(position, voronoi.inputs["Vector"])
        factor = _math(tree, "LESS_THAN", voronoi.outputs["Distance"], 0.28)
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    tree.links.new(factor, _socket(mix.inputs, "Factor", "VALUE"))
    _socket(mix.inputs, "A", "RGBA").default_value = _rgba(garment.colour)
    _socket(mix.inputs, "B", "RGBA").default_value = _rgba(texture.colour2)
    tree.links.new(_socket(mix.outputs, "Result", "RGBA"), bsdf.inputs["Base Color"])
    return material


def _wrap_photo(tree, position, texture, bsdf) -> None:
    """The patch wrapped once around the body's vertical axis (u: the angle about it, so no
    UV seams) and repeated `scale` times a metre up the body (v)."""
    parts = tree.nodes.new("ShaderNodeSeparateXYZ")
    tree.links.new(position, parts.inputs[0])
    angle = _math(tree, "ARCTAN2", parts.outputs["Y"], parts.outputs["X"])
    u = _math(tree, "ADD", _math(tree, "DIVIDE", angle, 2 * math.pi), 0.5)
    v = _math(tree, "MULTIPLY", parts.outputs["Z"], texture.scale)
    uv = tree.nodes.new("ShaderNodeCombineXYZ")
    tree.links.new(u, uv.inputs["X"])
    tree.links.new(v, uv.inputs["Y"])
    image = tree.nodes.new("ShaderNodeTexImage")
    image.image = bpy.data.images.load(str(texture.image), check_existing=True)
    image.extension = "REPEAT"
    tree.links.new(uv.outputs["Vector"], image.inputs["Vector"])
    tree.links.new(image.outputs["Color"], bsdf.inputs["Base Color"])


def image_material(name: str, path: str):
    """A surface showing an image (a cubemap face) over its UVs."""
    material, bsdf = new_material(name, (0.5, 0.5, 0.5), roughness=0.9)
    tree = material.node_tree
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = bpy.data.images.load(path, check_existing=True)
    texture.extension = "EXTEND"
    tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material
